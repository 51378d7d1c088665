//! `[log]`: format, level, the access log, and what is redacted from it.

use serde::Deserialize;

use super::error::Errors;

/// Estonian personal identification codes (isikukood): century-and-sex
/// digit, birth date, serial, check digit. Redacted unless turned off.
pub const ISIKUKOOD: &str = r"\b[1-6][0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{4}\b";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// A tracing filter such as `info` or `gateway=debug`; RUST_LOG wins.
    pub level: Option<String>,
    /// One line per request (default on).
    pub access: Option<bool>,
    /// Extra regular expressions whose matches are replaced before any
    /// path or query reaches a log.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Keep the built-in national identity code pattern (default true).
    pub redact_national_ids: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
    pub access: bool,
    pub redactor: Redactor,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
            access: true,
            redactor: Redactor::new(&[ISIKUKOOD]).unwrap_or_default(),
        }
    }
}

/// Replaces personal data in text bound for logs.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    patterns: Option<regex::RegexSet>,
    each: Vec<regex::Regex>,
}

impl Redactor {
    pub fn new(patterns: &[&str]) -> Result<Redactor, String> {
        let each = patterns
            .iter()
            .map(|p| regex::Regex::new(p).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let set = regex::RegexSet::new(patterns).map_err(|e| e.to_string())?;
        Ok(Redactor { patterns: (!patterns.is_empty()).then_some(set), each })
    }

    /// `text` with every match replaced by `[redacted]`; borrowed when
    /// nothing matched, which is the common case.
    pub fn apply<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.patterns {
            Some(set) if set.is_match(text) => {
                let mut out = text.to_string();
                for re in &self.each {
                    out = re.replace_all(&out, "[redacted]").into_owned();
                }
                std::borrow::Cow::Owned(out)
            }
            _ => std::borrow::Cow::Borrowed(text),
        }
    }
}

pub(crate) fn compile_log(file: &LogFile, errors: &mut Errors) -> LogSettings {
    let format = match file.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            errors.push("log.format", format!("unknown format \"{other}\": use text or json"));
            LogFormat::Text
        }
    };
    let level = file.level.clone().unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
        errors.push("log.level", format!("invalid filter \"{level}\": {e}"));
    }
    let mut patterns: Vec<&str> = Vec::new();
    if file.redact_national_ids.unwrap_or(true) {
        patterns.push(ISIKUKOOD);
    }
    for (i, p) in file.redact.iter().enumerate() {
        match regex::Regex::new(p) {
            Ok(_) => patterns.push(p),
            Err(e) => errors.push(format!("log.redact[{i}]"), format!("invalid pattern: {e}")),
        }
    }
    let redactor = Redactor::new(&patterns).unwrap_or_default();
    LogSettings { format, level, access: file.access.unwrap_or(true), redactor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_ids_are_redacted_and_other_numbers_are_not() {
        let r = Redactor::new(&[ISIKUKOOD]).unwrap();
        assert_eq!(r.apply("/people/38001085718?x=1"), "/people/[redacted]?x=1");
        assert_eq!(r.apply("/acts/112032026004"), "/acts/112032026004");
        assert_eq!(r.apply("/companies/10137319"), "/companies/10137319");
    }
}
