//! Priority classes: which class a request belongs to, by a plugin's
//! decision, its method and its path. Classes are listed highest first.

use http::Method;

use crate::config::burst::Class;

/// The index of the first class that matches. A plugin's `hint` (a class
/// name) wins when it names a class; otherwise method and path decide. The
/// compiled list always ends with a catch-all, so something matches.
pub fn classify(classes: &[Class], method: &Method, path: &str, hint: Option<&str>) -> usize {
    if let Some(i) = hint.and_then(|h| classes.iter().position(|c| c.name == h)) {
        return i;
    }
    classes
        .iter()
        .position(|c| {
            (c.methods.is_empty() || c.methods.contains(method))
                && (c.prefixes.is_empty() || c.prefixes.iter().any(|p| under(path, p)))
        })
        .unwrap_or(classes.len().saturating_sub(1))
}

/// Whole-segment prefix match, as routes do: `/tax/status` matches
/// `/tax/status/1` but not `/tax/statuses`.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, methods: &[Method], prefixes: &[&str]) -> Class {
        Class {
            name: name.into(),
            share: 0.0,
            methods: methods.to_vec(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn tax_day_classes_submit_status_browse() {
        let classes = vec![
            class("submit", &[Method::POST], &["/tax/declarations"]),
            class("status", &[Method::GET], &["/tax/status"]),
            class("browse", &[], &[]),
        ];
        assert_eq!(classify(&classes, &Method::POST, "/tax/declarations/1", None), 0);
        assert_eq!(classify(&classes, &Method::GET, "/tax/status/1", None), 1);
        assert_eq!(classify(&classes, &Method::GET, "/tax/statuses", None), 2);
        assert_eq!(classify(&classes, &Method::GET, "/tax/rates", Some("submit")), 0);
        assert_eq!(classify(&classes, &Method::GET, "/tax/rates", Some("nonsense")), 2);
    }
}
