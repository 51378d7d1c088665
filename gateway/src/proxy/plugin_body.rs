//! Bodies for plugins: read up to a cap; past it, the part read and the
//! rest stream on together, untouched.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use tokio::time::Instant;

use super::body::{BoxError, ProxyBody};

pub enum Capped {
    /// The whole body, at most the cap.
    Whole(Bytes),
    /// Longer than the cap: what was read, then the rest, as one body.
    Over(ProxyBody),
}

/// Reads `body` until it ends or passes `cap` bytes, before `deadline`.
/// Trailers of a whole body are dropped (plugins see data only).
pub async fn read_capped(mut body: ProxyBody, cap: usize, deadline: Instant) -> Result<Capped, BoxError> {
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err("the body did not arrive before the request deadline".into()),
            Ok(None) => return Ok(Capped::Whole(buf.freeze())),
            Ok(Some(frame)) => frame?,
        };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > cap {
                return Ok(Capped::Over(prefixed(buf.freeze(), body)));
            }
        }
    }
}

fn prefixed(head: Bytes, rest: ProxyBody) -> ProxyBody {
    let first = futures_util::stream::once(std::future::ready(Ok::<_, BoxError>(Frame::data(head))));
    BodyExt::boxed(StreamBody::new(first.chain(BodyStream::new(rest))))
}
