//! The head of a connection's first request, read before hyper sees it, for what
//! Go's HTTP server (dockerd's) accepts and hyper does not: a request line with
//! characters a URI may not hold unescaped (`curl 'http://localhost/containers/json?filters={"status":["running"]}'`
//! sends its quotes as they are) is escaped; a head too large is answered with a
//! body that says so (hyper answers 414 and 431 with none), and the connection
//! closes. Later requests on a kept-alive connection go to hyper unchanged: the
//! clients that keep connections (the docker CLI, docker-py, compose) escape.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Go's `http.DefaultMaxHeaderBytes` plus its slack.
pub const MAX_HEAD: usize = (1 << 20) + 4096;
/// The longest request target `http::Uri` takes.
const MAX_URI: usize = 65534;

/// A stream whose first bytes are `prefix` (already read), then the stream's.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether `b` may stand unescaped in a request target (RFC 3986's unreserved
/// and reserved characters, and `%`).
fn uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// The request line with what a URI may not hold escaped; `None` if it is
/// fine as it is.
fn escape_request_line(line: &[u8]) -> Option<Vec<u8>> {
    let first = line.iter().position(|b| *b == b' ')?;
    let last = line.iter().rposition(|b| *b == b' ')?;
    if last <= first {
        return None;
    }
    let target = &line[first + 1..last];
    if target.iter().all(|b| uri_byte(*b)) {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() + 16);
    out.extend_from_slice(&line[..=first]);
    for &b in target {
        if uri_byte(b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out.extend_from_slice(&line[last..]);
    Some(out)
}

fn refusal(status: &str, message: &str) -> Vec<u8> {
    let body = format!("{}\n", serde_json::json!({ "message": message }));
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads the first request's head; answers it here when it is too large (and
/// returns `None`), else hands back the stream with what was read, the request
/// line escaped where it must be.
pub async fn first_request<S>(mut stream: S) -> Option<Prefixed<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(p);
        }
        if buf.len() > MAX_HEAD {
            break None;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                // Closed before a whole head: hyper reads what there is.
                return Some(Prefixed {
                    prefix: buf,
                    at: 0,
                    inner: stream,
                });
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let line_end = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(buf.len());
    let answer = match head_end {
        None => Some(refusal(
            "431 Request Header Fields Too Large",
            "the request's header fields are too large (more than 1 MB)",
        )),
        Some(_) if line_end > MAX_URI + 32 => Some(refusal(
            "414 URI Too Long",
            "the request URI is too long (at most 65534 bytes)",
        )),
        Some(_) => None,
    };
    if let Some(a) = answer {
        let _ = stream.write_all(&a).await;
        let _ = stream.shutdown().await;
        return None;
    }
    if let Some(line) = escape_request_line(&buf[..line_end]) {
        buf.splice(..line_end, line);
    }
    Some(Prefixed {
        prefix: buf,
        at: 0,
        inner: stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_escaped_only_where_a_uri_needs_it() {
        assert_eq!(
            escape_request_line(br#"GET /containers/json?filters={"status":["running"]} HTTP/1.1"#)
                .unwrap(),
            b"GET /containers/json?filters=%7B%22status%22:[%22running%22]%7D HTTP/1.1"
        );
        assert!(escape_request_line(b"GET /v1.51/containers/json?all=1 HTTP/1.1").is_none());
        assert_eq!(
            escape_request_line("GET /images/caf\u{e9}/json HTTP/1.1".as_bytes()).unwrap(),
            b"GET /images/caf%C3%A9/json HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn a_head_too_large_is_answered_with_a_body() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let t = tokio::spawn(async move { first_request(server).await.is_none() });
        let line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70000));
        client.write_all(line.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        assert!(t.await.unwrap());
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(
            out.ends_with("{\"message\":\"the request URI is too long (at most 65534 bytes)\"}\n"),
            "{out}"
        );
        // Header fields past Go's limit: 431, with a body.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let t = tokio::spawn(async move { first_request(server).await.is_none() });
        let head = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "b".repeat(MAX_HEAD));
        let _ = client.write_all(head.as_bytes()).await;
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        assert!(t.await.unwrap());
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
        assert!(out.contains("\"message\":"), "{out}");
    }
}
