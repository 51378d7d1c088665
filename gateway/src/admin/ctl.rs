//! `gateway ctl`: the admin API from the command line, for operators in a
//! crisis who should not have to remember URLs.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// One admin call: (HTTP status, pretty JSON body).
pub async fn call(
    admin: SocketAddr,
    token: &str,
    method: Method,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::new())?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| anyhow::anyhow!("the admin API at {admin} did not answer within 10s"))?
        .map_err(|e| anyhow::anyhow!("cannot reach the admin API at {admin}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    let pretty = serde_json::from_slice::<serde_json::Value>(&body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    Ok((status, pretty))
}
