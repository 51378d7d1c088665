//! Edge limits of the public listener: how many connections, from whom, and
//! what an HTTP/2 client may ask of one connection. Keys live in `[server]`.

use super::error::Errors;
use super::file::ServerFile;

/// Compiled edge limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Open client connections, all clients together.
    pub max_connections: usize,
    /// Open client connections from one IP address.
    pub max_connections_per_client: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub http2_max_concurrent_streams: u32,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            max_connections: 10_000,
            max_connections_per_client: 256,
            http2_max_concurrent_streams: 128,
        }
    }
}

pub(crate) fn compile(file: &ServerFile, errors: &mut Errors) -> EdgeLimits {
    let d = EdgeLimits::default();
    let max_connections =
        positive(errors, "server.max_connections", file.max_connections).unwrap_or(d.max_connections);
    let max_connections_per_client =
        positive(errors, "server.max_connections_per_client", file.max_connections_per_client)
            .unwrap_or(d.max_connections_per_client);
    if max_connections_per_client > max_connections {
        errors.push(
            "server.max_connections_per_client",
            format!("{max_connections_per_client} is more than server.max_connections ({max_connections})"),
        );
    }
    let streams = positive(errors, "server.http2_max_concurrent_streams", file.http2_max_concurrent_streams)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or(d.http2_max_concurrent_streams);
    EdgeLimits { max_connections, max_connections_per_client, http2_max_concurrent_streams: streams }
}

/// `None` when absent or zero (zero records an error).
fn positive(errors: &mut Errors, path: &str, value: Option<u64>) -> Option<usize> {
    match value? {
        0 => {
            errors.push(path, "must be greater than zero");
            None
        }
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}
