//! A byte-level watch for the one smuggling shape hyper accepts silently.
//!
//! A request with both `Content-Length` and `Transfer-Encoding: chunked`
//! is framed by hyper as chunked, with the `Content-Length` dropped before
//! the request reaches the gateway (and the connection closed afterwards).
//! That is safe for hyper, but the gateway refuses the shape outright: the
//! client that sends it is probing for a parser that disagrees. Since the
//! parsed request no longer shows it, [`FramingGuard`] looks at the bytes as
//! they are read and raises an [`Alarm`] that the request path checks.
//!
//! The scan needs no HTTP/1 framing of its own (which could drift from
//! hyper's): every header line starts at a line start and a head is a run of
//! non-empty lines, so scanning every line of the stream, bodies included,
//! finds every head. A body that itself contains such a head is refused too:
//! only the connection that sent it is affected.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Raised once a connection has sent a head with both framings; stays raised.
#[derive(Debug, Clone, Default)]
pub struct Alarm(Arc<AtomicBool>);

impl Alarm {
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

const CL: &[u8] = b"content-length:";
const TE: &[u8] = b"transfer-encoding:";
const H2_PREFACE_LINE: &[u8] = b"pri * http/2.0";

/// Line-by-line scanner; bounded memory whatever the input.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Lower-cased start of the current line (enough for the longest name).
    prefix: [u8; 18],
    /// Bytes in the current line so far (may exceed `prefix`).
    line_len: usize,
    saw_cl: bool,
    saw_te: bool,
    lines: u64,
    /// HTTP/2 (prior knowledge): binary frames, nothing to scan.
    off: bool,
    tripped: bool,
}

impl Scanner {
    /// Feeds bytes; returns true once a head with both framings was seen.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.off || self.tripped {
                break;
            }
            if b == b'\n' {
                self.end_line();
            } else {
                if self.line_len < self.prefix.len() {
                    self.prefix[self.line_len] = b.to_ascii_lowercase();
                }
                self.line_len = self.line_len.saturating_add(1);
            }
        }
        self.tripped
    }

    fn end_line(&mut self) {
        let stored = &self.prefix[..self.line_len.min(self.prefix.len())];
        let empty = self.line_len == 0 || (self.line_len == 1 && stored == b"\r");
        if self.lines == 0 && stored.starts_with(H2_PREFACE_LINE) {
            self.off = true;
        } else if empty {
            self.tripped |= self.saw_cl && self.saw_te;
            self.saw_cl = false;
            self.saw_te = false;
        } else if stored.starts_with(CL) {
            self.saw_cl = true;
        } else if stored.starts_with(TE) {
            self.saw_te = true;
        }
        self.lines += 1;
        self.line_len = 0;
    }
}

pin_project_lite::pin_project! {
    /// Passes bytes through unchanged, scanning what the client sends.
    pub struct FramingGuard<S> {
        #[pin]
        inner: S,
        scanner: Scanner,
        alarm: Alarm,
    }
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S, alarm: Alarm) -> Self {
        FramingGuard { inner, scanner: Scanner::default(), alarm }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead> AsyncRead for FramingGuard<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            // The alarm is raised before hyper sees these bytes, so it is
            // up before the offending request reaches the request path.
            if this.scanner.feed(&buf.filled()[before..]) {
                this.alarm.raise();
            }
        }
        result
    }
}

impl<S: AsyncWrite> AsyncWrite for FramingGuard<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(input: &[u8], piece: usize) -> bool {
        let mut s = Scanner::default();
        input.chunks(piece.max(1)).any(|c| s.feed(c))
    }

    #[test]
    fn both_framings_in_one_head_trip_in_any_split() {
        let req =
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for piece in 1..req.len() {
            assert!(scan_in_pieces(req, piece), "split every {piece} bytes");
        }
        let te_first = b"POST / HTTP/1.1\nTRANSFER-ENCODING: chunked\ncontent-length: 4\n\n";
        assert!(scan_in_pieces(te_first, 7));
    }

    #[test]
    fn framings_in_different_heads_do_not_trip() {
        let two = b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nokPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(!scan_in_pieces(two, 5));
    }

    #[test]
    fn a_head_after_a_body_without_line_end_is_still_seen() {
        let glued = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST /b HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(scan_in_pieces(glued, 3));
    }

    #[test]
    fn http2_prior_knowledge_switches_the_scan_off() {
        let mut s = Scanner::default();
        s.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(!s.feed(b"content-length: 1\ntransfer-encoding: chunked\n\n"));
    }
}
