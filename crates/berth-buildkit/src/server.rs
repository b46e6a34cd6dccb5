//! gRPC as a server, over an HTTP/2 connection berth already has (a client's
//! `POST /grpc` upgraded to h2c, or the session `berth build` serves to berthd):
//! a call's request messages are read as they come, the answer goes out as one
//! message or a stream of them, and the status rides in the trailers.

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
/// metadata, and its request messages as they arrive.
pub struct Call {
    pub method: String,
    pub metadata: hyper::HeaderMap,
    body: hyper::body::Incoming,
    buf: BytesMut,
    ended: bool,
}

impl Call {
    /// The next request message; `None` once the client has closed its side.
    pub async fn next<M: Message + Default>(&mut self) -> Result<Option<M>, Status> {
        loop {
            if self.buf.len() >= 5 {
                if self.buf[0] != 0 {
                    return Err(Status::new(
                        Code::InvalidArgument,
                        format!("{}: compressed messages are not accepted", self.method),
                    ));
                }
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    let m = self.buf.split_to(len).freeze();
                    return M::decode(m).map(Some).map_err(|e| {
                        Status::new(Code::InvalidArgument, format!("{}: {e}", self.method))
                    });
                }
            }
            if self.ended {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Status::new(
                        Code::InvalidArgument,
                        format!("{}: the request ends inside a message", self.method),
                    ))
                };
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Err(e)) => {
                    return Err(Status::new(
                        Code::Cancelled,
                        format!("{}: reading the request: {e}", self.method),
                    ))
                }
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }

    /// The request's one message.
    pub async fn decode<M: Message + Default>(&mut self) -> Result<M, Status> {
        self.next().await?.ok_or_else(|| {
            Status::new(
                Code::InvalidArgument,
                format!("{}: the request holds no message", self.method),
            )
        })
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
    let reply = handler(Call {
        method,
        metadata: parts.headers,
        body,
        buf: BytesMut::new(),
        ended: false,
    })
    .await;
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
            &framed(&Bytes::from_static(&[8, 1]))[..],
            [0, 0, 0, 0, 2, 8, 1]
        );
        assert_eq!(percent_encode("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(percent_encode("café"), "caf%C3%A9");
        let t = trailers(Some(&Status::new(Code::Unimplemented, "no")));
        assert_eq!(t["grpc-status"], "12");
        assert_eq!(t["grpc-message"], "no");
        assert_eq!(trailers(None)["grpc-status"], "0");
    }

    /// berth's gRPC client and server on one connection: a unary call, a
    /// failing one, and a stream both ways whose messages are answered as they
    /// come.
    #[tokio::test]
    async fn a_client_and_a_server_talk_over_one_connection() {
        use crate::proto::BytesMessage;
        let (a, b) = tokio::io::duplex(64 << 10);
        let handler: Handler = Arc::new(|mut call: Call| {
            Box::pin(async move {
                match call.method.as_str() {
                    "/t.T/Echo" => match call.decode::<BytesMessage>().await {
                        Ok(m) => Reply::one(&m),
                        Err(s) => Reply::Fail(s),
                    },
                    "/t.T/Upper" => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::spawn(async move {
                            while let Ok(Some(m)) = call.next::<BytesMessage>().await {
                                let up = BytesMessage {
                                    data: m.data.to_ascii_uppercase(),
                                };
                                let _ = tx.send(Ok(Bytes::from(up.encode_to_vec())));
                            }
                        });
                        Reply::Stream(rx)
                    }
                    m => Reply::Fail(Status::new(Code::Unimplemented, format!("no {m}"))),
                }
            })
        });
        tokio::spawn(serve(hyper_util::rt::TokioIo::new(b), handler));
        let (ch, _conn) = crate::grpc::Channel::connect(hyper_util::rt::TokioIo::new(a))
            .await
            .unwrap();
        let r: BytesMessage = ch
            .unary(
                "/t.T/Echo",
                &[],
                &BytesMessage {
                    data: b"hi".to_vec(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.data, b"hi");
        let e = ch
            .unary::<_, BytesMessage>("/t.T/Nope", &[], &BytesMessage::default())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "no /t.T/Nope (gRPC status 12)");
        let (tx, mut rx) = ch
            .bidi::<BytesMessage, BytesMessage>("/t.T/Upper", &[])
            .await
            .unwrap();
        for w in ["one", "two"] {
            tx.send(BytesMessage { data: w.into() }).await.unwrap();
            let m = rx.next().await.unwrap().unwrap();
            assert_eq!(m.data, w.to_ascii_uppercase().as_bytes());
        }
        drop(tx);
        assert!(rx.next().await.unwrap().is_none());
    }
}
