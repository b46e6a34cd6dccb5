//! A small Engine API client over a unix socket or TCP (with TLS as the docker CLI
//! has it: `--tlsverify`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`): one HTTP/1.1
//! connection per call, with hijacking for attach.

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
    endpoint: Endpoint,
}

#[derive(Clone)]
enum Endpoint {
    Unix(String),
    /// `ssh://[user@]host[:port]`: each connection is `ssh ... -- berth system
    /// dial-stdio` on that host, as the docker CLI runs `docker system dial-stdio`.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
    Tcp {
        addr: String,
        tls: Option<(
            std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
            tokio_rustls::rustls::pki_types::ServerName<'static>,
        )>,
    },
}

/// The docker CLI's TLS options (`--tls`, `--tlsverify`, `--tlscacert`,
/// `--tlscert`, `--tlskey`; `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`).
#[derive(Debug, Clone, Default)]
pub struct TlsOpts {
    pub tls: bool,
    pub verify: bool,
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl TlsOpts {
    fn config(&self) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>> {
        let verify = self.verify || std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        if !(verify || self.tls) {
            return Ok(None);
        }
        let dir = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker"))
            })
            .unwrap_or_default();
        let ca = self.ca.clone().unwrap_or_else(|| dir.join("ca.pem"));
        let cert = self.cert.clone().unwrap_or_else(|| dir.join("cert.pem"));
        let key = self.key.clone().unwrap_or_else(|| dir.join("key.pem"));
        // A client certificate when its files are there, as the docker CLI.
        let client = (cert.exists() && key.exists()).then_some((cert.as_path(), key.as_path()));
        if !verify {
            // `--tls` alone: encrypted, the server not checked (the docker CLI's
            // meaning of it).
            if client.is_some() {
                bail!("--tls without --tlsverify takes no client certificate in berth: use --tlsverify");
            }
            return Ok(Some(berth_registry::tls::insecure_config()));
        }
        let ca = ca.exists().then_some(ca.as_path());
        Ok(Some(berth_registry::tls::engine_client_config(ca, client)?))
    }
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
            .or_else(rootless_socket)
            .unwrap_or_else(|| "unix:///run/berth/berth.sock".into())
    }

    /// The client for `-H`, else `--context`, else BERTH_HOST or DOCKER_HOST,
    /// else DOCKER_CONTEXT or the docker CLI's current context, else the default
    /// socket.
    pub fn resolve(host: Option<&str>, context: Option<&str>, tls: &TlsOpts) -> Result<Client> {
        if host.is_some() && context.is_some() {
            bail!("conflicting options: either specify --host or --context, not both");
        }
        let from_env = ["BERTH_HOST", "DOCKER_HOST"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()));
        let context = match (host, context) {
            (None, Some(c)) => Some(c.to_string()),
            (None, None) if !from_env => std::env::var("DOCKER_CONTEXT")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(current_context),
            _ => None,
        };
        match context.filter(|c| c != "default") {
            Some(name) => {
                let (h, t) = docker_context(&name)?;
                Self::new(Some(&h), &t)
            }
            None => Self::new(host, tls),
        }
    }

    pub fn new(host: Option<&str>, tls: &TlsOpts) -> Result<Client> {
        let host = Self::host(host);
        if let Some(socket) = host.strip_prefix("unix://") {
            return Ok(Client {
                endpoint: Endpoint::Unix(socket.to_string()),
            });
        }
        if host.starts_with("ssh://") {
            let u = url::Url::parse(&host).map_err(|e| anyhow!("invalid host {host:?}: {e}"))?;
            if !u.path().is_empty() && u.path() != "/" {
                bail!(
                    "invalid host {host:?}: extra path after the host: {}",
                    u.path()
                );
            }
            let h = u
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| anyhow!("invalid host {host:?}: no host name"))?;
            return Ok(Client {
                endpoint: Endpoint::Ssh {
                    user: Some(u.username().to_string()).filter(|u| !u.is_empty()),
                    host: h.to_string(),
                    port: u.port(),
                },
            });
        }
        if let Some(addr) = host.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/').to_string();
            let name = addr
                .rsplit_once(':')
                .map_or(addr.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let tls = match tls.config()? {
                None => None,
                Some(cfg) => Some((
                    cfg,
                    tokio_rustls::rustls::pki_types::ServerName::try_from(name)
                        .map_err(|e| anyhow!("invalid host {host:?}: {e}"))?,
                )),
            };
            return Ok(Client {
                endpoint: Endpoint::Tcp { addr, tls },
            });
        }
        bail!("unsupported host {host:?}: berth connects to unix:// and tcp:// addresses")
    }

    /// `berth system dial-stdio`: this process's stdin and stdout become a
    /// connection to the daemon, until either side closes.
    pub async fn dial_stdio(&self) -> Result<()> {
        let Endpoint::Unix(socket) = &self.endpoint else {
            bail!("dial-stdio reaches a daemon on its unix socket");
        };
        let s = UnixStream::connect(socket)
            .await
            .with_context(|| format!("Cannot connect to the berth daemon at unix://{socket}"))?;
        let (mut r, mut w) = s.into_split();
        let up = async {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut w).await;
            use tokio::io::AsyncWriteExt;
            let _ = w.shutdown().await;
        };
        let down = async {
            let mut out = tokio::io::stdout();
            let _ = tokio::io::copy(&mut r, &mut out).await;
            use tokio::io::AsyncWriteExt;
            let _ = out.flush().await;
        };
        // The daemon's side ending ends the proxy; the client closing its side
        // only half-closes the daemon's.
        tokio::select! {
            _ = down => {}
            _ = async { up.await; std::future::pending::<()>().await } => {}
        }
        Ok(())
    }

    /// A request that failed on the wire; a plain TCP client reaching a TLS
    /// socket is told so, in the docker CLI's words.
    fn sent(&self, e: hyper::Error) -> anyhow::Error {
        match &self.endpoint {
            Endpoint::Tcp { tls: None, .. } if e.is_parse() => {
                anyhow!("{e}\n* Are you trying to connect to a TLS-enabled daemon without TLS?")
            }
            _ => e.into(),
        }
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<BoxBody>> {
        trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
        impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
        let io: Box<dyn Io> = match &self.endpoint {
            Endpoint::Unix(socket) => {
                Box::new(UnixStream::connect(socket).await.with_context(|| {
                    format!(
                        "Cannot connect to the berth daemon at unix://{socket}. Is berthd running?"
                    )
                })?)
            }
            Endpoint::Ssh { user, host, port } => {
                let mut cmd = tokio::process::Command::new("ssh");
                cmd.args(["-o", "ConnectTimeout=30", "-T"]);
                if let Some(u) = user {
                    cmd.args(["-l", u]);
                }
                if let Some(p) = port {
                    cmd.args(["-p", &p.to_string()]);
                }
                cmd.args(["--", host, "berth", "system", "dial-stdio"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true);
                let mut child = cmd
                    .spawn()
                    .with_context(|| format!("running ssh to {host}"))?;
                let stdin = child.stdin.take().expect("piped");
                let stdout = child.stdout.take().expect("piped");
                Box::new(SshIo {
                    _child: child,
                    stdin: Some(stdin),
                    stdout,
                })
            }
            Endpoint::Tcp { addr, tls } => {
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .with_context(|| {
                        format!("Cannot connect to the berth daemon at tcp://{addr}. Is berthd running?")
                    })?;
                let _ = stream.set_nodelay(true);
                match tls {
                    None => Box::new(stream),
                    Some((cfg, name)) => Box::new(
                        tokio_rustls::TlsConnector::from(cfg.clone())
                            .connect(name.clone(), stream)
                            .await
                            .with_context(|| format!("error during connect: tcp://{addr}"))?,
                    ),
                }
            }
        };
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
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
        let resp = send.send_request(req).await.map_err(|e| self.sent(e))?;
        check(resp).await
    }

    /// An empty-bodied request with extra headers (X-Registry-Auth).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        self.request_with_body(method, path, headers, full(Bytes::new()))
            .await
    }

    /// A request with extra headers and a JSON body.
    pub async fn request_with_body(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: BoxBody,
    ) -> Result<Response<Incoming>> {
        let mut send = self.connect().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://berth/v{}{path}", berth_api::API_VERSION))
            .header("Host", "berth")
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = send
            .send_request(req.body(body)?)
            .await
            .map_err(|e| self.sent(e))?;
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
        let resp = send
            .send_request(req.body(full(Bytes::new()))?)
            .await
            .map_err(|e| self.sent(e))?;
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

/// The docker CLI's configuration directory (DOCKER_CONFIG, or ~/.docker).
pub(crate) fn docker_config_dir() -> std::path::PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")))
        .unwrap_or_default()
}

/// `currentContext` of the docker CLI's config.json.
pub(crate) fn current_context() -> Option<String> {
    let b = std::fs::read(docker_config_dir().join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v["currentContext"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A docker context's engine endpoint, as `docker context create` stores it: the
/// host in `contexts/meta/<sha256 of the name>/meta.json`, the TLS files in
/// `contexts/tls/<sha256>/docker/`.
fn docker_context(name: &str) -> Result<(String, TlsOpts)> {
    use sha2::Digest;
    let id = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    let dir = docker_config_dir().join("contexts");
    let meta = dir.join("meta").join(&id).join("meta.json");
    let b = std::fs::read(&meta).map_err(|_| anyhow!("context {name:?} does not exist"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&b).with_context(|| format!("reading {}", meta.display()))?;
    let ep = &v["Endpoints"]["docker"];
    let host = ep["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("context {name:?} has no docker endpoint"))?
        .to_string();
    let tls_dir = dir.join("tls").join(&id).join("docker");
    let file = |f: &str| Some(tls_dir.join(f)).filter(|p| p.exists());
    let skip = ep["SkipTLSVerify"].as_bool().unwrap_or(false);
    let tls = TlsOpts {
        tls: skip && tls_dir.exists(),
        verify: !skip && tls_dir.exists(),
        ca: file("ca.pem"),
        cert: file("cert.pem"),
        key: file("key.pem"),
    };
    Ok((host, tls))
}

/// An ssh process's stdout and stdin as one connection; the process goes with it.
/// Shutting the writing side down closes ssh's stdin (the remote end's EOF).
struct SshIo {
    _child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::process::ChildStdout,
}

impl tokio::io::AsyncRead for SshIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SshIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            None => std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.stdin.as_mut() {
            Some(w) => std::pin::Pin::new(w).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(w) = self.stdin.as_mut() {
            std::task::ready!(std::pin::Pin::new(w).poll_flush(cx))?;
        }
        self.stdin = None;
        std::task::Poll::Ready(Ok(()))
    }
}

/// For a user other than root: the socket of the user's own rootless berthd
/// ($XDG_RUNTIME_DIR/berth.sock), when it is there.
fn rootless_socket() -> Option<String> {
    if rustix::process::geteuid().is_root() {
        return None;
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    let sock = std::path::Path::new(&dir).join("berth.sock");
    sock.exists().then(|| format!("unix://{}", sock.display()))
}
