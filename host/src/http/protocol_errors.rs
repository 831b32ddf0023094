//! JSON bodies for the errors hyper answers itself.
//!
//! When a request cannot be parsed (a bad request line, a non-ASCII byte in the target,
//! HTTP/0.9, two `Content-Length` headers, bytes that are not HTTP at all such as a TLS
//! ClientHello), is too long (414) or has too many or too large headers (431), hyper's HTTP/1
//! server writes a status line with `content-length: 0` and closes the connection: no request
//! ever reaches the router, and hyper has no option to give that answer a body (its
//! `Http1ServerConn` builds the head in `role::Server::on_error`). [`JsonProtocolErrors`] wraps
//! the connection's socket and replaces exactly that answer, on its way out, by the same status
//! with the API's JSON error body (`{"success":false,"code":400,"message":"..."}`).
//!
//! What is recognised: a single write that is a whole response head and nothing else, with the
//! status 400, 414 or 431, and only the headers hyper puts there (`content-length: 0`,
//! `date`, `connection`). The router never answers like that (every error it sends has a JSON
//! body and a content type, see `json_errors` in `http/mod.rs`), and a response body is
//! written after its head, never as a write that starts with a status line and ends the head,
//! so nothing else matches in practice. hyper closes the connection after such an answer, so
//! the different body length cannot confuse a later response.
//!
//! hyper then drops the socket with the rest of the refused request still unread (a 500 kB
//! header, say), and closing a socket with unread data sends a reset that makes the client's
//! system discard the answer before the client reads it. So the socket is closed the way
//! web servers do after an error ("lingering close"): after such an answer, it is handed to a
//! task that sends the answer's end (FIN), reads and discards what the client still sends for
//! up to [`LINGER`] (at most [`LINGER_BYTES`]), and only then closes it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Longest time a socket is kept open after a replaced answer, for the client to read it.
pub const LINGER: Duration = Duration::from_secs(2);

/// Most bytes read and discarded during that time.
pub const LINGER_BYTES: usize = 4 << 20;

/// The connection's socket, with hyper's own empty-bodied error answers given a JSON body.
#[derive(Debug)]
pub struct JsonProtocolErrors {
    /// The socket; `None` only once dropped.
    inner: Option<TcpStream>,
    /// A replacement answer still to be written, and how much of it already was.
    pending: Option<(Vec<u8>, usize)>,
    /// Whether an answer was replaced: the socket then lingers when dropped.
    replaced: bool,
}

impl JsonProtocolErrors {
    /// Wraps a socket.
    pub fn new(inner: TcpStream) -> Self {
        JsonProtocolErrors {
            inner: Some(inner),
            pending: None,
            replaced: false,
        }
    }

    fn io(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.inner
                .as_mut()
                .expect("the socket is only taken when dropped"),
        )
    }
}

impl Drop for JsonProtocolErrors {
    fn drop(&mut self) {
        if !self.replaced {
            return;
        }
        let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let rest = self
            .pending
            .take()
            .map(|(bytes, written)| bytes[written..].to_vec())
            .unwrap_or_default();
        runtime.spawn(linger(stream, rest));
    }
}

/// Writes what is left of the answer, ends it, and drains the client's data for a while so
/// the close does not reset the connection under the answer.
async fn linger(mut stream: TcpStream, rest: Vec<u8>) {
    let _ = tokio::time::timeout(LINGER, async {
        if stream.write_all(&rest).await.is_err() || stream.shutdown().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The message for a status hyper answers itself.
fn message(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => {
            "malformed HTTP request: the request line, a header or the request target could not \
             be parsed (an HTTP/1.x request in ASCII is expected; TLS is not served here)"
        }
        414 => "the request target (path and query) is too long",
        431 => "request headers too large: at most 100 headers and about 400 kB of them",
        _ => return None,
    })
}

/// The JSON answer replacing `head`, when `head` is one of hyper's own error answers.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let text = text.strip_suffix("\r\n\r\n")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let message = message(status)?;
    let mut date = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value == "0" => {}
            "connection" => {}
            "date" => date = Some(value),
            _ => return None,
        }
    }
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let body = serde_json::to_vec(&super::ErrorBody {
        success: false,
        code: status,
        message: message.to_owned(),
        unknown_ids: None,
        worker: None,
        index: None,
    })
    .ok()?;
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(date) = date {
        out.push_str(&format!("date: {date}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl JsonProtocolErrors {
    /// Writes what is left of a replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            let inner = self
                .inner
                .as_mut()
                .expect("the socket is only taken when dropped");
            let n = ready!(Pin::new(inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == bytes.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Queues the replacement of `head` (reported as written in full) and starts writing it.
    fn replace(&mut self, cx: &mut Context<'_>, reply: Vec<u8>, len: usize) -> io::Result<usize> {
        self.pending = Some((reply, 0));
        self.replaced = true;
        // What does not fit now is written by the next write, flush or shutdown.
        if let Poll::Ready(Err(e)) = self.drain(cx) {
            return Err(e);
        }
        Ok(len)
    }
}

impl AsyncRead for JsonProtocolErrors {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for JsonProtocolErrors {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(reply) = replacement(buf) {
            return Poll::Ready(self.replace(cx, reply, buf.len()));
        }
        self.io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return self.io().poll_write_vectored(cx, bufs);
        };
        if let Some(reply) = replacement(&bufs[first]) {
            return Poll::Ready(self.replace(cx, reply, bufs[first].len()));
        }
        // Write up to the next slice that is such an answer; it comes first next time.
        let end = bufs[first + 1..]
            .iter()
            .position(|b| replacement(b).is_some())
            .map_or(bufs.len(), |i| first + 1 + i);
        self.io().poll_write_vectored(cx, &bufs[..end])
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        self.io().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn only_hypers_own_error_answers_are_replaced() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 22:00:00 GMT\r\n\r\n";
        let reply = String::from_utf8(replacement(hyper).unwrap()).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(
            head.contains("date: Tue, 01 Dec 2026 22:00:00 GMT"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["code"], 431);

        for other in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"some body bytes",
        ] {
            assert!(replacement(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
