//! HTTP plumbing at the edge: bodies (whole, streamed from a channel), query
//! parsing, JSON responses, and bridges between async bodies and blocking readers
//! and writers for archive work.

use crate::api::errors::status;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The response body: nothing, bytes, or a stream of chunks from a channel.
pub enum Body {
    Empty,
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Stream(_) => false,
        }
    }
}

pub type Resp = Response<Body>;

pub fn json<T: Serialize>(code: StatusCode, v: &T) -> Resp {
    let body = serde_json::to_vec(v).expect("API types serialise");
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .body(Body::Full(Some(Bytes::from(body))))
        .expect("valid response")
}

pub fn empty(code: StatusCode) -> Resp {
    Response::builder()
        .status(code)
        .body(Body::Empty)
        .expect("valid response")
}

pub fn text(code: StatusCode, s: &'static str) -> Resp {
    Response::builder()
        .status(code)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(Body::Full(Some(Bytes::from_static(s.as_bytes()))))
        .expect("valid response")
}

pub fn stream(code: StatusCode, content_type: &str, rx: mpsc::Receiver<Bytes>) -> Resp {
    Response::builder()
        .status(code)
        .header("Content-Type", content_type)
        .body(Body::Stream(rx))
        .expect("valid response")
}

pub fn error(e: &ApiError) -> Resp {
    json(
        status(e.kind),
        &berth_api::ErrorResponse {
            message: e.message.clone(),
        },
    )
}

/// Query parameters, decoded, in order (some, like `changes`, repeat).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `k`, as Go's url.Values.Get gives it.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Docker's boolean query values: "1", "true", "True" are true; absent, "",
    /// "0", "false" are false.
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some(v) if !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::invalid(format!("invalid value for {k}: {v:?}: not an integer"))
            }),
        }
    }

    /// The `filters` parameter: `{"key":["v1","v2"]}` (or the legacy `{"key":{"v":true}}`).
    pub fn filters(&self) -> ApiResult<HashMap<String, Vec<String>>> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(HashMap::new());
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::invalid("invalid filter: not a JSON object"))?;
        let mut out = HashMap::new();
        for (k, vals) in obj {
            let list = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                serde_json::Value::Object(o) => o.keys().cloned().collect(),
                _ => return Err(ApiError::invalid(format!("invalid filter: {k}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

/// A request's body: as it streams in, or already read (an authorization plugin
/// was shown it first).
pub enum ReqBody {
    Stream(Incoming),
    Full(Option<Bytes>),
}

impl HttpBody for ReqBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Stream(i) => Pin::new(i).poll_frame(cx).map_err(Into::into),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }
}

/// Reads a whole (small) request body.
pub async fn read_body(body: ReqBody, limit: usize) -> ApiResult<Bytes> {
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| ApiError::invalid(format!("reading request body: {e}")))?;
    Ok(collected.to_bytes())
}

async fn read_json<T: serde::de::DeserializeOwned>(body: ReqBody) -> ApiResult<T> {
    let b = read_body(body, 8 << 20).await?;
    if b.is_empty() {
        return Err(ApiError::invalid(
            "request body is empty: a JSON object is required",
        ));
    }
    serde_json::from_slice(&b)
        .map_err(|e| ApiError::invalid(format!("invalid JSON in request body: {e}")))
}

/// Reads and discards up to `limit` bytes of a body.
pub async fn drain(mut body: ReqBody, limit: usize) {
    let mut seen = 0;
    while let Some(Ok(f)) = body.frame().await {
        if let Ok(d) = f.into_data() {
            seen += d.len();
            if seen > limit {
                break;
            }
        }
    }
}

/// Feeds a request body to blocking code as a `Read`.
pub struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl BodyReader {
    pub fn new(mut body: ReqBody) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                match body.frame().await {
                    None => break,
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            if tx.send(Ok(d)).await.is_err() {
                                // The reader stopped (an error): take the rest so the
                                // client can read the answer instead of a broken pipe.
                                drain(body, 64 << 20).await;
                                break;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e.to_string())).await;
                        break;
                    }
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A request, taken apart: handlers receive this rather than hyper's type.
pub struct Call {
    pub method: Method,
    /// The path without the `/vX.Y` prefix.
    pub path: String,
    pub query: Query,
    pub body: Option<ReqBody>,
    /// The raw request, kept only for connection upgrades (attach).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub headers: hyper::HeaderMap,
    /// The API version of the path's `/vX.Y` prefix, when it has one.
    pub version: Option<String>,
}

impl Call {
    /// The body as JSON of type `T`. A body declared as something else is
    /// refused, in Docker's words (moby's CheckForJSON); no declared type is
    /// taken as JSON, as Docker does.
    pub async fn json<T: serde::de::DeserializeOwned>(&mut self) -> ApiResult<T> {
        if let Some(ct) = self
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.is_empty() && !media.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::invalid(format!(
                    "Content-Type specified ({ct}) must be 'application/json'"
                )));
            }
        }
        read_json(self.take_body()?).await
    }

    pub fn take_body(&mut self) -> ApiResult<ReqBody> {
        self.body
            .take()
            .ok_or_else(|| ApiError::internal("request body already consumed"))
    }
}
