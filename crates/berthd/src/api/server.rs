//! Listeners: unix sockets, socket activation (fd://) and TCP (with TLS, client
//! certificates checked against the CA given), served with hyper.

use crate::api::{handle, Daemon};
use anyhow::{bail, Context, Result};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::UnixListener;

pub struct Listeners {
    pub listeners: Vec<UnixListener>,
    /// tcp:// sockets, each with its TLS acceptor (none on a plain loopback one).
    pub tcp: Vec<(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>)>,
    /// Socket files berthd created, removed at shutdown.
    pub paths: Vec<PathBuf>,
}

/// Binds every `-H` address.
pub fn bind(
    hosts: &[String],
    tls: Option<&crate::config::Tls>,
    gid: Option<u32>,
) -> Result<Listeners> {
    let mut out = Listeners {
        listeners: Vec::new(),
        tcp: Vec::new(),
        paths: Vec::new(),
    };
    let acceptor = match tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            berth_registry::tls::server_config(&t.cert, &t.key, t.client_ca.as_deref())
                .context("setting up TLS")?,
        )),
        None => None,
    };
    for h in hosts {
        if let Some(path) = h.strip_prefix("unix://") {
            let path = PathBuf::from(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    bail!("{} is in use by another daemon", path.display());
                }
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing stale socket {}", path.display()))?;
            }
            let l = UnixListener::bind(&path)
                .with_context(|| format!("listening on {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
                .with_context(|| format!("setting permissions of {}", path.display()))?;
            if let Some(gid) = gid {
                std::os::unix::fs::chown(&path, Some(0), Some(gid))
                    .with_context(|| format!("giving {} to group {gid}", path.display()))?;
            }
            out.listeners.push(l);
            out.paths.push(path);
        } else if h.starts_with("fd://") {
            out.listeners.extend(activated(h)?);
        } else if h.starts_with("tcp://") {
            let addr = crate::config::tcp_addr(h)?;
            let l =
                std::net::TcpListener::bind(addr).with_context(|| format!("listening on {h}"))?;
            l.set_nonblocking(true)?;
            out.tcp
                .push((tokio::net::TcpListener::from_std(l)?, acceptor.clone()));
        }
    }
    Ok(out)
}

/// Sockets passed by systemd (LISTEN_PID, LISTEN_FDS): `fd://` takes them all,
/// `fd://N` the one numbered N.
fn activated(h: &str) -> Result<Vec<UnixListener>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !pid_ok || n == 0 {
        bail!("{h}: no sockets were passed by socket activation (LISTEN_FDS)");
    }
    let wanted: Option<i32> = match h.trim_start_matches("fd://") {
        "" => None,
        s => Some(
            s.parse()
                .with_context(|| format!("{h}: not a file descriptor number"))?,
        ),
    };
    let mut out = Vec::new();
    for fd in 3..3 + n {
        if wanted.is_some_and(|w| w != fd) {
            continue;
        }
        let owned =
            berth_runtime::sys::take_inherited_fd(fd).with_context(|| format!("{h}: fd {fd}"))?;
        let std_l = std::os::unix::net::UnixListener::from(owned);
        std_l.set_nonblocking(true)?;
        out.push(UnixListener::from_std(std_l)?);
    }
    if out.is_empty() {
        bail!("{h}: no such activated socket");
    }
    Ok(out)
}

pub fn serve(listener: UnixListener, daemon: Arc<Daemon>) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    continue;
                }
            };
            tokio::spawn(connection(stream, daemon.clone()));
        }
    });
}

/// A TCP socket: each connection through TLS first when the socket has it (a
/// client without a certificate the CA signed never reaches the API).
pub fn serve_tcp(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    daemon: Arc<Daemon>,
) {
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let d = daemon.clone();
            match tls.clone() {
                None => {
                    tokio::spawn(connection(stream, d));
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(s) => connection(s, d).await,
                            Err(e) => {
                                tracing::info!(%peer, error = %e, "TLS handshake refused")
                            }
                        }
                    });
                }
            }
        }
    });
}

async fn connection<S>(stream: S, d: Arc<Daemon>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let d = d.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(d, req).await) }
    });
    // The first request's head as Go's server would take it.
    let Some(stream) = super::head::first_request(stream).await else {
        return;
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(super::head::MAX_HEAD + (64 << 10))
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection");
    }
}
