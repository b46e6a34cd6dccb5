//! A small Engine API client over a unix socket: one HTTP/1.1 connection per call,
//! with hijacking for attach.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

/// An error the daemon answered with: the CLI prints it as Docker does.
#[derive(Debug)]
pub struct DaemonError {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for DaemonError {}

#[derive(Clone)]
pub struct Client {
    socket: String,
}

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A request body streamed from a reader (for load and import).
pub fn from_reader<R: std::io::Read + Send + 'static>(mut r: R) -> BoxBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Frame::data(Bytes::copy_from_slice(&buf[..n]))))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    RxStream(rx).boxed()
}

struct RxStream(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl hyper::body::Body for RxStream {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx)
    }
}

impl Client {
    /// `-H`, then BERTH_HOST, then DOCKER_HOST, then the default socket.
    pub fn host(host: Option<&str>) -> String {
        host.map(String::from)
            .or_else(|| std::env::var("BERTH_HOST").ok().filter(|s| !s.is_empty()))
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "unix:///run/berth/berth.sock".into())
    }

    pub fn new(host: Option<&str>) -> Result<Client> {
        let host = Self::host(host);
        let Some(socket) = host.strip_prefix("unix://") else {
            bail!("unsupported host {host:?}: berth connects over unix:// sockets");
        };
        Ok(Client {
            socket: socket.to_string(),
        })
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<BoxBody>> {
        let stream = UnixStream::connect(&self.socket).await.with_context(|| {
            format!(
                "Cannot connect to the berth daemon at unix://{}. Is berthd running?",
                self.socket
            )
        })?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(send)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: BoxBody,
        content_type: &str,
    ) -> Result<Response<Incoming>> {
        let mut send = self.connect().await?;
        let req = Request::builder()
            .method(method)
            .uri(format!("http://berth/v{}{path}", berth_api::API_VERSION))
            .header("Host", "berth")
            .header("Content-Type", content_type)
            .body(body)?;
        let resp = send.send_request(req).await?;
        check(resp).await
    }

    /// An empty-bodied request with extra headers (X-Registry-Auth).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let mut send = self.connect().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://berth/v{}{path}", berth_api::API_VERSION))
            .header("Host", "berth");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = send.send_request(req.body(full(Bytes::new()))?).await?;
        check(resp).await
    }

    pub async fn get(&self, path: &str) -> Result<Response<Incoming>> {
        self.request(Method::GET, path, full(Bytes::new()), "text/plain")
            .await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.get(path).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&body).context("decoding the daemon's answer")
    }

    pub async fn post_json<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Response<Incoming>> {
        let b = serde_json::to_vec(body)?;
        self.request(Method::POST, path, full(b), "application/json")
            .await
    }

    pub async fn post(&self, path: &str) -> Result<Response<Incoming>> {
        self.request(Method::POST, path, full(Bytes::new()), "text/plain")
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Response<Incoming>> {
        self.request(Method::DELETE, path, full(Bytes::new()), "text/plain")
            .await
    }

    /// Hijacks the connection (attach): returns the raw stream after 101.
    pub async fn upgrade(&self, path: &str) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        self.upgrade_to(path, "tcp", &[]).await
    }

    /// Upgrades a POST of `path` to `proto` (`tcp`, or `h2c` for a session),
    /// with extra headers; returns the raw stream after 101.
    pub async fn upgrade_to(
        &self,
        path: &str,
        proto: &str,
        headers: &[(&str, String)],
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let mut send = self.connect().await?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://berth/v{}{path}", berth_api::API_VERSION))
            .header("Host", "berth")
            .header("Connection", "Upgrade")
            .header("Upgrade", proto);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = send.send_request(req.body(full(Bytes::new()))?).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            check(resp).await?;
            bail!("the daemon did not upgrade the connection of {path}");
        }
        let up = hyper::upgrade::on(resp).await?;
        Ok(TokioIo::new(up))
    }
}

async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    if resp.status().is_success()
        || resp.status() == StatusCode::NOT_MODIFIED
        || resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let message = serde_json::from_slice::<berth_api::ErrorResponse>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
    Err(anyhow!(DaemonError { status, message }))
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
