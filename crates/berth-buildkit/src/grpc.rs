//! gRPC as a client, over an HTTP/2 connection berth already has (a session a
//! BuildKit client exposes on a hijacked connection): length-prefixed messages,
//! metadata as headers, the status in the trailers.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Frame;
use prost::Message;
use std::convert::Infallible;
use tokio::sync::mpsc;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the session's connection: {0}")]
    Http(#[from] hyper::Error),
    #[error("{message} (gRPC status {code})")]
    Status { code: u32, message: String },
    #[error("a message from the session does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the session closed the stream")]
    Closed,
}

/// One message as gRPC puts it on the wire (uncompressed).
pub fn frame<M: Message>(m: &M) -> Bytes {
    let body = m.encode_to_vec();
    let mut b = BytesMut::with_capacity(body.len() + 5);
    b.extend_from_slice(&[0]);
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend_from_slice(&body);
    b.freeze()
}

/// A gRPC client over one HTTP/2 connection.
#[derive(Clone)]
pub struct Channel {
    send: hyper::client::conn::http2::SendRequest<Body>,
}

type Pending = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<hyper::body::Incoming, Error>> + Send>,
>;

/// Messages of a response stream, as they arrive. The response itself is awaited
/// at the first read: a server may answer only after it has had a message.
pub struct Incoming<M> {
    pending: Option<Pending>,
    body: Option<hyper::body::Incoming>,
    buf: BytesMut,
    done: bool,
    _m: std::marker::PhantomData<M>,
}

fn status_of(headers: &hyper::HeaderMap) -> Option<Error> {
    let code: u32 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    if code == 0 {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(Error::Status { code, message })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<M: Message + Default> Incoming<M> {
    /// The next message; `Ok(None)` at the stream's end with status OK.
    pub async fn next(&mut self) -> Result<Option<M>, Error> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    let m = M::decode(self.buf.split_to(len).freeze())?;
                    return Ok(Some(m));
                }
            }
            if self.done {
                return Ok(None);
            }
            if let Some(p) = self.pending.take() {
                self.body = Some(p.await?);
            }
            let Some(body) = self.body.as_mut() else {
                return Err(Error::Closed);
            };
            match body.frame().await {
                None => {
                    self.done = true;
                }
                Some(f) => {
                    let f = f?;
                    if let Some(t) = f.trailers_ref() {
                        self.done = true;
                        if let Some(e) = status_of(t) {
                            return Err(e);
                        }
                    } else if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }
}

impl Channel {
    /// The client side of an HTTP/2 connection on `io`, and the task that runs
    /// the connection (it ends when the connection does).
    pub async fn connect<IO>(io: IO) -> Result<(Channel, tokio::task::JoinHandle<()>), Error>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "a session's connection ended");
            }
        });
        Ok((Channel { send }, task))
    }

    /// Sends a request; what comes back resolves to the response body.
    fn call(&self, path: &str, metadata: &[(&str, String)], body: Body) -> Pending {
        let mut req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(format!("http://session{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in metadata {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(body);
        let mut send = self.send.clone();
        Box::pin(async move {
            let req = req.map_err(|_| Error::Closed)?;
            send.ready().await?;
            let resp = send.send_request(req).await?;
            if let Some(e) = status_of(resp.headers()) {
                return Err(e);
            }
            Ok(resp.into_body())
        })
    }

    /// A call with one message each way.
    pub async fn unary<Q: Message, R: Message + Default>(
        &self,
        path: &str,
        metadata: &[(&str, String)],
        req: &Q,
    ) -> Result<R, Error> {
        let body = http_body_util::Full::new(frame(req)).boxed();
        let mut stream = Incoming::<R> {
            pending: Some(self.call(path, metadata, body)),
            body: None,
            buf: BytesMut::new(),
            done: false,
            _m: Default::default(),
        };
        let r = stream.next().await?.ok_or(Error::Closed)?;
        // Drain to the trailers, for the status.
        while stream.next().await?.is_some() {}
        Ok(r)
    }

    /// A call streaming both ways: what is sent on the returned sender goes out
    /// as it comes; dropping the sender ends the request.
    pub async fn bidi<Q: Message + Send + 'static, R: Message + Default>(
        &self,
        path: &str,
        metadata: &[(&str, String)],
    ) -> Result<(mpsc::Sender<Q>, Incoming<R>), Error> {
        let (tx, mut rx) = mpsc::channel::<Q>(64);
        let (ftx, frx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if ftx.send(Ok(Frame::data(frame(&m)))).await.is_err() {
                    break;
                }
            }
        });
        let body = RxBody(frx).boxed();
        // The request goes now; its answer is awaited at the first read.
        let response = tokio::spawn(self.call(path, metadata, body));
        let pending: Pending = Box::pin(async move { response.await.map_err(|_| Error::Closed)? });
        Ok((
            tx,
            Incoming {
                pending: Some(pending),
                body: None,
                buf: BytesMut::new(),
                done: false,
                _m: Default::default(),
            },
        ))
    }
}

/// A request body fed by a channel of frames.
struct RxBody(mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl hyper::body::Body for RxBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_percent_decoding() {
        let f = frame(&crate::proto::BytesMessage {
            data: b"hi".to_vec(),
        });
        assert_eq!(&f[..], [0, 0, 0, 0, 4, 0x0a, 2, b'h', b'i']);
        assert_eq!(percent_decode("not%20found"), "not found");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
