//! One registry: HTTP/1.1 requests with the registry's authentication, and the
//! distribution API's calls on top.

use crate::auth::{parse_challenge, Challenge, Credentials};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// What went wrong talking to a registry, in a category the daemon maps to a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Unauthorized,
    /// The registry cannot be reached or answered something unusable.
    Unavailable,
    Invalid,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The first message of a registry's `{"errors": [...]}` body, or the status.
fn registry_message(status: StatusCode, body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v.get("errors")
        .and_then(|e| e.get(0))
        .map(|e| {
            let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            let code = e.get("code").and_then(|m| m.as_str()).unwrap_or("");
            if msg.is_empty() {
                code.to_ascii_lowercase().replace('_', " ")
            } else {
                msg.to_string()
            }
        })
        .or_else(|| v.get("details").and_then(|d| d.as_str()).map(String::from))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() || text.len() > 200 {
                status.to_string()
            } else {
                text
            }
        })
}

/// A response whose body has not been read.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
}

impl Response {
    /// Whether the registry answered a range request with a range (206).
    pub fn is_partial(&self) -> bool {
        self.status == StatusCode::PARTIAL_CONTENT
    }

    /// The next chunk of the body; None at its end. An error is the connection
    /// breaking mid-body, in words.
    pub async fn chunk(&mut self) -> Option<std::result::Result<Bytes, String>> {
        loop {
            match self.body.frame().await? {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        return Some(Ok(d));
                    }
                }
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub async fn bytes(self) -> Result<Bytes> {
        self.body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("reading the registry's answer: {e}"),
                )
            })
    }
}

pub struct Registry {
    /// `host[:port]` as it appears in references.
    pub host: String,
    /// `https`, or `http` once an insecure registry turned out not to speak TLS.
    scheme: Mutex<&'static str>,
    /// An insecure registry: HTTPS first, then plain HTTP when TLS fails.
    fallback: bool,
    creds: Option<Credentials>,
    /// Bearer tokens by scope.
    tokens: Mutex<HashMap<String, String>>,
    /// The registry asked for Basic authentication.
    basic: Mutex<bool>,
    /// TLS for HTTPS connections (None: plain HTTP only).
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

/// An HTTP/1.1 connection to `host:port`, through TLS when `tls` is given.
async fn connect<B>(
    host: &str,
    port: u16,
    tls: Option<&std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
) -> std::result::Result<hyper::client::conn::http1::SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let addr = format!(
        "{}:{port}",
        host.trim_start_matches('[').trim_end_matches(']')
    );
    let stream = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| "connection timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(sender)
        }
        Some(cfg) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| e.to_string())?;
            let tls = tokio::time::timeout(
                Duration::from_secs(10),
                tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, stream),
            )
            .await
            .map_err(|_| "TLS: handshake timed out".to_string())?
            .map_err(|e| format!("TLS: {e}"))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(sender)
        }
    }
}

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

impl Registry {
    /// A registry at `host` (`registry-1.docker.io` for Docker Hub), over plain HTTP
    /// when `plain_http`.
    pub fn new(host: &str, plain_http: bool, creds: Option<Credentials>) -> Registry {
        Registry {
            host: host.to_string(),
            scheme: Mutex::new(if plain_http { "http" } else { "https" }),
            fallback: false,
            creds: creds.filter(|c| !c.is_empty()),
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(false),
            tls: None,
        }
    }

    /// An insecure registry, as Docker treats one: HTTPS without verifying the
    /// certificate, and plain HTTP when the registry does not speak TLS.
    pub fn insecure(host: &str, creds: Option<Credentials>) -> Registry {
        let mut r = Registry::new(host, false, creds);
        r.fallback = true;
        r.tls = Some(crate::tls::insecure_config());
        r
    }

    /// The TLS configuration for HTTPS (this registry's, and token servers').
    pub fn with_tls(mut self, tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>) -> Registry {
        self.tls = Some(tls);
        self
    }

    fn tls_for(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<Option<&std::sync::Arc<tokio_rustls::rustls::ClientConfig>>> {
        if scheme != "https" {
            return Ok(None);
        }
        self.tls.as_ref().map(Some).ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                format!("{host}:{port} needs HTTPS, and no TLS configuration was given"),
            )
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme(), self.host)
    }

    fn scheme(&self) -> &'static str {
        *self.scheme.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One request on a new connection, following no redirect.
    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Response> {
        let u = url::Url::parse(url)
            .map_err(|e| Error::new(ErrorKind::Invalid, format!("invalid URL {url}: {e}")))?;
        let host = u
            .host_str()
            .ok_or_else(|| Error::new(ErrorKind::Invalid, format!("invalid URL {url}")))?;
        let port = u.port_or_known_default().unwrap_or(80);
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::new(ErrorKind::Unavailable, format!("{method} {url}: {e}"))
        };
        let tls = self.tls_for(u.scheme(), host, port)?;
        let mut sender = match connect::<Full<Bytes>>(host, port, tls).await {
            Ok(s) => s,
            // An insecure registry that does not speak TLS: plain HTTP from now on.
            Err(e)
                if self.fallback
                    && u.scheme() == "https"
                    && e.starts_with("TLS")
                    && host_port(&u) == self.host =>
            {
                tracing::debug!(registry = %self.host, error = %e, "no TLS, falling back to HTTP");
                *self.scheme.lock().unwrap_or_else(|p| p.into_inner()) = "http";
                let plain = url.replacen("https://", "http://", 1);
                return Box::pin(self.send_once(method, &plain, headers, body)).await;
            }
            Err(e) => return Err(unavailable(&e)),
        };
        let path = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(
                "Host",
                u.host_str()
                    .map(|h| match u.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    })
                    .unwrap_or_default(),
            )
            .header("User-Agent", USER_AGENT);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        if !body.is_empty()
            || *method == Method::PUT
            || *method == Method::POST
            || *method == Method::PATCH
        {
            req = req.header("Content-Length", body.len().to_string());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| Error::new(ErrorKind::Invalid, format!("building {method} {url}: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(&e))?;
        let (parts, body) = resp.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Fetches a token for `scope` from the challenge's realm.
    async fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut url = url::Url::parse(realm).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("invalid token realm {realm:?}: {e}"),
            )
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let mut headers = Vec::new();
        if let Some(c) = &self.creds {
            headers.push(("Authorization", format!("Basic {}", c.basic())));
        }
        let r = self
            .send_once(&Method::GET, url.as_str(), &headers, Bytes::new())
            .await?;
        let status = r.status;
        let body = r.bytes().await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                registry_message(status, &body),
            ));
        }
        if !status.is_success() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "getting a token from {realm}: {}",
                    registry_message(status, &body)
                ),
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("token from {realm}: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("no token in the answer of {realm}"),
                )
            })
    }

    fn auth_header(&self, scope: &str) -> Option<String> {
        if let Some(t) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
        {
            return Some(format!("Bearer {t}"));
        }
        if *self.basic.lock().unwrap_or_else(|p| p.into_inner()) {
            return self.creds.as_ref().map(|c| format!("Basic {}", c.basic()));
        }
        None
    }

    /// A request with the registry's authentication for `scope`
    /// (`repository:<path>:pull[,push]`): on a 401 the challenge is answered and the
    /// request made once more.
    pub async fn request(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, String)],
        body: Bytes,
        scope: &str,
    ) -> Result<Response> {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        fn with_auth<'a>(h: &[(&'a str, String)], auth: Option<String>) -> Vec<(&'a str, String)> {
            let mut h = h.to_vec();
            if let Some(a) = auth {
                h.push(("Authorization", a));
            }
            h
        }
        let r = self
            .send_once(
                &method,
                &url,
                &with_auth(headers, self.auth_header(scope)),
                body.clone(),
            )
            .await?;
        if r.status != StatusCode::UNAUTHORIZED {
            return Ok(r);
        }
        let challenge = r.header("www-authenticate").and_then(parse_challenge);
        let first = r.bytes().await.unwrap_or_default();
        match challenge {
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let want = if scope.is_empty() {
                    asked.unwrap_or_default()
                } else {
                    scope.to_string()
                };
                let token = self.token(&realm, service.as_deref(), &want).await?;
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(scope.to_string(), token);
            }
            Some(Challenge::Basic) if self.creds.is_some() => {
                *self.basic.lock().unwrap_or_else(|p| p.into_inner()) = true;
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    registry_message(StatusCode::UNAUTHORIZED, &first),
                ))
            }
        }
        let r = self
            .send_once(
                &method,
                &url,
                &with_auth(headers, self.auth_header(scope)),
                body,
            )
            .await?;
        if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN {
            let status = r.status;
            let b = r.bytes().await.unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Unauthorized,
                registry_message(status, &b),
            ));
        }
        Ok(r)
    }

    /// Checks the registry's answer: a success passes, anything else becomes an
    /// error with the registry's message.
    async fn ok(r: Response, what: &str) -> Result<Response> {
        if r.status.is_success() {
            return Ok(r);
        }
        let status = r.status;
        let body = r.bytes().await.unwrap_or_default();
        let kind = match status {
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthorized,
            s if s.is_client_error() => ErrorKind::Invalid,
            _ => ErrorKind::Unavailable,
        };
        Err(Error::new(
            kind,
            format!("{what}: {}", registry_message(status, &body)),
        ))
    }

    /// Checks that the registry speaks the API (`GET /v2/`), answering its challenge:
    /// `docker login`.
    pub async fn ping(&self) -> Result<()> {
        let r = self
            .request(Method::GET, "/v2/", &[], Bytes::new(), "")
            .await?;
        Self::ok(r, "logging in").await.map(drop)
    }

    fn pull_scope(repo: &str) -> String {
        format!("repository:{repo}:pull")
    }

    fn push_scope(repo: &str) -> String {
        format!("repository:{repo}:pull,push")
    }

    /// A manifest by tag or digest: its bytes, media type and the registry's
    /// `Docker-Content-Digest`.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String, Option<String>)> {
        let r = self
            .request(
                Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", crate::manifest::ACCEPT.to_string())],
                Bytes::new(),
                &Self::pull_scope(repo),
            )
            .await?;
        let r = Self::ok(r, &format!("manifest for {}/{repo}:{reference}", self.host)).await?;
        let ct = r.header("content-type").unwrap_or("").to_string();
        let digest = r.header("docker-content-digest").map(String::from);
        Ok((r.bytes().await?, ct, digest))
    }

    /// A blob, from byte `from` on (a resumed download), following the registry's
    /// redirect to its storage.
    pub async fn blob(&self, repo: &str, digest: &str, from: u64) -> Result<Response> {
        let mut headers = Vec::new();
        if from > 0 {
            headers.push(("Range", format!("bytes={from}-")));
        }
        let mut r = self
            .request(
                Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
                &headers,
                Bytes::new(),
                &Self::pull_scope(repo),
            )
            .await?;
        for _ in 0..5 {
            if !r.status.is_redirection() {
                break;
            }
            let Some(loc) = r.header("location").map(String::from) else {
                break;
            };
            let next = url::Url::parse(&self.url(&format!("/v2/{repo}/blobs/{digest}")))
                .and_then(|base| base.join(&loc))
                .map_err(|e| {
                    Error::new(ErrorKind::Unavailable, format!("bad redirect {loc:?}: {e}"))
                })?;
            // Storage behind a redirect gets no registry credentials.
            r = self
                .send_once(&Method::GET, next.as_str(), &headers, Bytes::new())
                .await?;
        }
        Self::ok(r, &format!("blob {digest}")).await
    }

    /// Whether the repository has a blob (`HEAD`).
    pub async fn has_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        let r = self
            .request(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                Bytes::new(),
                &Self::push_scope(repo),
            )
            .await?;
        match r.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Self::ok(r, &format!("checking blob {digest}"))
                .await
                .map(|_| false),
        }
    }

    /// Asks the registry to mount a blob from another repository; true if it did.
    pub async fn mount_blob(&self, repo: &str, digest: &str, from: &str) -> Result<bool> {
        let scope = format!("{} repository:{from}:pull", Self::push_scope(repo));
        let r = self
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
                &[],
                Bytes::new(),
                &scope,
            )
            .await?;
        if r.status == StatusCode::CREATED {
            return Ok(true);
        }
        // 202: the registry started an upload instead; it is abandoned here.
        Self::ok(r, &format!("mounting blob {digest}"))
            .await
            .map(|_| false)
    }

    /// Uploads a small blob in one request: the `POST`, then a `PUT` with the data
    /// and its digest (monolithic upload).
    pub async fn upload_blob(&self, repo: &str, digest: &str, data: Bytes) -> Result<()> {
        let scope = Self::push_scope(repo);
        let location = self.upload_start(repo).await?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .request(
                Method::PUT,
                &format!("{location}{sep}digest={digest}"),
                &[("Content-Type", "application/octet-stream".into())],
                data,
                &scope,
            )
            .await?;
        Self::ok(r, &format!("uploading {digest}")).await.map(drop)
    }

    fn location(&self, r: &Response, repo: &str) -> Result<String> {
        let loc = r.header("location").ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "the registry gave no upload location",
            )
        })?;
        url::Url::parse(&self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .and_then(|b| b.join(loc))
            .map(|u| u.to_string())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("bad upload location {loc:?}: {e}"),
                )
            })
    }

    /// Puts a manifest under `reference` (a tag); returns the registry's digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<String> {
        let digest = crate::digest_of(&body);
        let r = self
            .request(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", media_type.to_string())],
                body,
                &Self::push_scope(repo),
            )
            .await?;
        let r = Self::ok(r, &format!("putting the manifest of {repo}:{reference}")).await?;
        Ok(r.header("docker-content-digest")
            .map(String::from)
            .unwrap_or(digest))
    }
}

/// `host[:port]` of a URL, as references write it.
fn host_port(u: &url::Url) -> String {
    match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
        None => u.host_str().unwrap_or_default().to_string(),
    }
}

/// A request body fed from a channel: an upload streamed while it is produced.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

impl Registry {
    /// Starts an upload; returns where to send the data.
    pub async fn upload_start(&self, repo: &str) -> Result<String> {
        let scope = Self::push_scope(repo);
        let r = self
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                Bytes::new(),
                &scope,
            )
            .await?;
        let r = Self::ok(r, "starting an upload").await?;
        self.location(&r, repo)
    }

    /// Sends an upload's data as one streamed `PATCH` (chunked transfer encoding),
    /// as it is produced; returns the location to finish at.
    pub async fn upload_stream(
        &self,
        repo: &str,
        location: &str,
        data: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> Result<String> {
        let u = url::Url::parse(location).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("invalid upload location {location}: {e}"),
            )
        })?;
        let host = u.host_str().unwrap_or_default().to_string();
        let port = u.port_or_known_default().unwrap_or(80);
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::Unavailable,
                format!("uploading to {location}: {e}"),
            )
        };
        let tls = self.tls_for(u.scheme(), &host, port)?;
        let mut sender = connect::<ChannelBody>(&host, port, tls)
            .await
            .map_err(|e| unavailable(&e))?;
        let path = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        let mut req = Request::builder()
            .method(Method::PATCH)
            .uri(path)
            .header(
                "Host",
                match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.clone(),
                },
            )
            .header("User-Agent", USER_AGENT)
            .header("Content-Type", "application/octet-stream");
        if let Some(a) = self.auth_header(&Self::push_scope(repo)) {
            req = req.header("Authorization", a);
        }
        let req = req
            .body(ChannelBody(data))
            .map_err(|e| Error::new(ErrorKind::Invalid, format!("building the upload: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(&e))?;
        let (parts, body) = resp.into_parts();
        let r = Self::ok(
            Response {
                status: parts.status,
                headers: parts.headers,
                body,
            },
            "uploading",
        )
        .await?;
        self.location(&r, repo)
    }

    /// Closes an upload with the blob's digest.
    pub async fn upload_finish(&self, repo: &str, location: &str, digest: &str) -> Result<()> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .request(
                Method::PUT,
                &format!("{location}{sep}digest={digest}"),
                &[("Content-Type", "application/octet-stream".into())],
                Bytes::new(),
                &Self::push_scope(repo),
            )
            .await?;
        Self::ok(r, &format!("finishing the upload of {digest}"))
            .await
            .map(drop)
    }
}

/// `GET url` of any HTTP(S) server (a build's remote context, `ADD <url>`),
/// following up to five redirects; an answer that is not a success is an error.
pub async fn get_url(url: &str) -> Result<Response> {
    let mut url = url.to_string();
    for _ in 0..6 {
        let u = url::Url::parse(&url)
            .map_err(|e| Error::new(ErrorKind::Invalid, format!("invalid URL {url}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("unsupported URL scheme {:?}: http or https", u.scheme()),
            ));
        }
        let host = u.host_str().unwrap_or("").to_string();
        let host = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let r = Registry::new(&host, u.scheme() == "http", None)
            .send_once(&Method::GET, &url, &[], Bytes::new())
            .await?;
        if r.status.is_redirection() {
            if let Some(loc) = r.header("location") {
                url = u
                    .join(loc)
                    .map_err(|e| {
                        Error::new(ErrorKind::Invalid, format!("bad redirect {loc}: {e}"))
                    })?
                    .to_string();
                continue;
            }
        }
        if !r.status.is_success() {
            let status = r.status;
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("GET {url}: {status}"),
            ));
        }
        return Ok(r);
    }
    Err(Error::new(
        ErrorKind::Unavailable,
        format!("GET {url}: too many redirects"),
    ))
}

/// A header value from text (dropping what HTTP cannot carry).
pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_well() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            registry_message(StatusCode::NOT_FOUND, body),
            "manifest unknown"
        );
        let body = br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#;
        assert_eq!(
            registry_message(StatusCode::UNAUTHORIZED, body),
            "unauthorized"
        );
        assert_eq!(
            registry_message(StatusCode::BAD_GATEWAY, b""),
            "502 Bad Gateway"
        );
        assert_eq!(
            registry_message(StatusCode::UNAUTHORIZED, b"no way\n"),
            "no way"
        );
    }
}
