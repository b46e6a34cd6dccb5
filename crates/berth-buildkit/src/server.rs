//! gRPC as a server, over an HTTP/2 connection berth already has (a client's
//! `POST /grpc` upgraded to h2c): each call's request message is read whole (the
//! control API's calls send one message and close their side), the answer goes out
//! as one message or a stream of them, and the status rides in the trailers.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Frame;
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;

/// gRPC status codes berth answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    NotFound = 5,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
}

/// A call's failure as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }
}

/// What a call answers.
pub enum Reply {
    One(Bytes),
    /// Messages as they come; the stream ends OK when the sender is dropped, or
    /// with the status it sends.
    Stream(mpsc::UnboundedReceiver<Result<Bytes, Status>>),
    Fail(Status),
}

impl Reply {
    pub fn one<M: Message>(m: &M) -> Reply {
        Reply::One(Bytes::from(m.encode_to_vec()))
    }
}

/// A call as the handler sees it: its method (`/package.Service/Method`), its
/// metadata and its request message, undecoded.
pub struct Call {
    pub method: String,
    pub metadata: hyper::HeaderMap,
    pub message: Bytes,
}

impl Call {
    pub fn decode<M: Message + Default>(&self) -> Result<M, Status> {
        M::decode(self.message.clone())
            .map_err(|e| Status::new(Code::InvalidArgument, format!("{}: {e}", self.method)))
    }

    /// A metadata value (gRPC metadata are HTTP/2 headers).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(|v| v.to_str().ok())
    }
}

pub type Handler =
    Arc<dyn Fn(Call) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync + 'static>;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Serves calls on the connection `io` until the client closes it.
pub async fn serve<IO>(io: IO, handler: Handler) -> Result<(), hyper::Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(answer(req, handler).await) }
    });
    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(io, service)
        .await
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    handler: Handler,
) -> hyper::Response<Body> {
    let method = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let reply = match body.collect().await {
        Err(e) => Reply::Fail(Status::new(
            Code::Cancelled,
            format!("reading the request: {e}"),
        )),
        Ok(b) => match first_message(b.to_bytes()) {
            Some(message) => {
                handler(Call {
                    method,
                    metadata: parts.headers,
                    message,
                })
                .await
            }
            None => Reply::Fail(Status::new(
                Code::InvalidArgument,
                format!("{method}: the request holds no whole message"),
            )),
        },
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    match reply {
        Reply::One(m) => {
            let _ = tx.try_send(Ok(Frame::data(framed(&m))));
            let _ = tx.try_send(Ok(Frame::trailers(trailers(None))));
        }
        Reply::Fail(s) => {
            let _ = tx.try_send(Ok(Frame::trailers(trailers(Some(&s)))));
        }
        Reply::Stream(mut messages) => {
            tokio::spawn(async move {
                let mut end = None;
                while let Some(m) = messages.recv().await {
                    match m {
                        Ok(m) => {
                            if tx.send(Ok(Frame::data(framed(&m)))).await.is_err() {
                                return;
                            }
                        }
                        Err(s) => {
                            end = Some(s);
                            break;
                        }
                    }
                }
                let _ = tx.send(Ok(Frame::trailers(trailers(end.as_ref())))).await;
            });
        }
    }
    hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(RxBody(rx).boxed())
        .expect("a valid response")
}

/// The first length-prefixed message of a request body (empty messages count).
fn first_message(mut b: Bytes) -> Option<Bytes> {
    if b.len() < 5 || b[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
    b.advance(5);
    (b.len() >= len).then(|| b.split_to(len))
}

fn framed(m: &Bytes) -> Bytes {
    let mut b = BytesMut::with_capacity(m.len() + 5);
    b.extend_from_slice(&[0]);
    b.extend_from_slice(&(m.len() as u32).to_be_bytes());
    b.extend_from_slice(m);
    b.freeze()
}

fn trailers(s: Option<&Status>) -> hyper::HeaderMap {
    let mut h = hyper::HeaderMap::new();
    let (code, message) = s.map_or((0, String::new()), |s| {
        (s.code as u32, percent_encode(&s.message))
    });
    h.insert("grpc-status", code.into());
    if !message.is_empty() {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&message) {
            h.insert("grpc-message", v);
        }
    }
    h
}

/// gRPC's percent-encoding of grpc-message: printable ASCII but '%' as is.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct RxBody(mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl hyper::body::Body for RxBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_statuses_on_the_wire() {
        assert_eq!(
            first_message(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1, 9])).as_deref(),
            Some(&[8u8, 1][..])
        );
        assert_eq!(
            first_message(Bytes::from_static(&[0, 0, 0, 0, 0])).as_deref(),
            Some(&[][..])
        );
        // Compressed or cut short: no message.
        assert!(first_message(Bytes::from_static(&[1, 0, 0, 0, 0])).is_none());
        assert!(first_message(Bytes::from_static(&[0, 0, 0, 0, 3, 8])).is_none());
        assert_eq!(percent_encode("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(percent_encode("café"), "caf%C3%A9");
        let t = trailers(Some(&Status::new(Code::Unimplemented, "no")));
        assert_eq!(t["grpc-status"], "12");
        assert_eq!(t["grpc-message"], "no");
        assert_eq!(trailers(None)["grpc-status"], "0");
    }
}
