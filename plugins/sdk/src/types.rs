//! Typed helpers on the WIT records: headers, JSON bodies, builders.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Manifest, Request, RequestChanges, Response, ResponseChanges, UpstreamResponse};

/// Header fields as the WIT carries them: lower-case names, in order.
pub type Headers = Vec<(String, String)>;

fn find<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn parse<T: DeserializeOwned>(body: Option<&[u8]>) -> Result<T, String> {
    let body = body.ok_or("no body: declare it in the manifest")?;
    serde_json::from_slice(body).map_err(|e| format!("body is not the expected JSON: {e}"))
}

impl Manifest {
    /// Nothing declared: a plugin starts from here and switches hooks on.
    pub fn none() -> Manifest {
        Manifest {
            request_body: false,
            response_body: false,
            on_request: false,
            on_response: false,
            choose_site: false,
        }
    }
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The body parsed as JSON (needs `request_body` in the manifest).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        parse(self.body.as_deref())
    }

    /// The path split on `/`, without empty segments.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

impl UpstreamResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The body parsed as JSON (needs `response_body` in the manifest).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        parse(self.body.as_deref())
    }

    /// True when the response says its body is JSON.
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|c| c.contains("json"))
    }
}

impl Response {
    /// A JSON response with `content-type: application/json`.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Response { status, headers: vec![("content-type".into(), "application/json".into())], body }
    }

    /// A plain-text response.
    pub fn text(status: u16, text: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: text.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

impl RequestChanges {
    /// No change: the request goes on as it came.
    pub fn none() -> RequestChanges {
        RequestChanges {
            set_headers: Vec::new(),
            remove_headers: Vec::new(),
            path: None,
            body: None,
            priority: None,
        }
    }

    /// Puts the request in the registry's burst priority class `class`.
    pub fn priority(mut self, class: &str) -> RequestChanges {
        self.priority = Some(class.to_string());
        self
    }

    pub fn set_header(mut self, name: &str, value: &str) -> RequestChanges {
        self.set_headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn remove_header(mut self, name: &str) -> RequestChanges {
        self.remove_headers.push(name.to_ascii_lowercase());
        self
    }
}

impl ResponseChanges {
    pub fn none() -> ResponseChanges {
        ResponseChanges { status: None, set_headers: Vec::new(), remove_headers: Vec::new(), body: None }
    }

    /// Replaces the body with `value` as JSON (and says so in content-type).
    pub fn json_body<T: Serialize>(mut self, value: &T) -> ResponseChanges {
        self.body = serde_json::to_vec(value).ok();
        self.set_header("content-type", "application/json")
    }

    pub fn set_header(mut self, name: &str, value: &str) -> ResponseChanges {
        self.set_headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn status(mut self, status: u16) -> ResponseChanges {
        self.status = Some(status);
        self
    }
}
