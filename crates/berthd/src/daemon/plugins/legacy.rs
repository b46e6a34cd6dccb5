//! Docker's legacy plugins: a program serving Docker's plugin protocol (JSON over
//! HTTP, `POST /Plugin.Activate`, then its kind's calls: `/VolumeDriver.Create`,
//! `/AuthZPlugin.AuthZReq` ...) on a unix socket, found by name as dockerd finds
//! it: `<dir>/<name>.sock` or `<dir>/<name>/<name>.sock`, or a `<name>.spec` (an
//! address) or `<name>.json` file, in /run/docker/plugins, /etc/docker/plugins and
//! /usr/lib/docker/plugins. A plugin is trusted as dockerd trusts it: it runs as
//! root beside the daemon, the paths a volume plugin answers are bound into
//! containers, and an authorization plugin sees every request.

use crate::error::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Where dockerd looks for legacy plugins.
pub const DEFAULT_DIRS: &[&str] = &[
    "/run/docker/plugins",
    "/etc/docker/plugins",
    "/usr/lib/docker/plugins",
];

const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a call waits for a plugin's socket to accept.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// The plugins of the directories given, activated on first use.
pub struct Legacy {
    dirs: Vec<PathBuf>,
    /// Activated plugins: (name, kind) to socket.
    active: Mutex<HashMap<(String, String), PathBuf>>,
}

impl Legacy {
    pub fn new(dirs: Vec<PathBuf>) -> Legacy {
        Legacy {
            dirs,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// The unix socket of plugin `name`, from its socket or spec file.
    fn locate(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return None;
        }
        for d in &self.dirs {
            for p in [
                d.join(format!("{name}.sock")),
                d.join(name).join(format!("{name}.sock")),
            ] {
                if std::fs::metadata(&p)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    return Some(p);
                }
            }
            let addr = std::fs::read_to_string(d.join(format!("{name}.spec")))
                .ok()
                .map(|s| s.trim().to_string())
                .or_else(|| {
                    let b = std::fs::read(d.join(format!("{name}.json"))).ok()?;
                    let v: Value = serde_json::from_slice(&b).ok()?;
                    v["Addr"].as_str().map(String::from)
                });
            if let Some(a) = addr {
                if let Some(p) = a.strip_prefix("unix://") {
                    return Some(PathBuf::from(p));
                }
            }
        }
        None
    }

    /// The socket of plugin `name` of `kind` ("VolumeDriver", "authz"),
    /// activated; `not_found` says how its absence is told.
    pub(super) fn activate(
        &self,
        name: &str,
        kind: &str,
        not_found: impl Fn() -> ApiError,
    ) -> ApiResult<PathBuf> {
        let key = (name.to_string(), kind.to_string());
        if let Some(p) = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let sock = self.locate(name).ok_or_else(not_found)?;
        let v = call(&sock, false, "Plugin.Activate", &json!({}))?;
        let implements = v["Implements"].as_array().cloned().unwrap_or_default();
        if !implements.iter().any(|i| i == kind) {
            return Err(ApiError::invalid(format!(
                "plugin {name} does not implement {kind}"
            )));
        }
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, sock.clone());
        Ok(sock)
    }

    /// The names activated so far as `kind`.
    pub fn active(&self, kind: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|(_, k)| k == kind)
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }
}

/// One request of Docker's plugin protocol; the answer's `Err` is an error.
/// `nofollow`: the socket is in a directory a confined (managed) plugin writes:
/// a symbolic link there is not followed to a socket of the host.
pub(super) fn call(sock: &Path, nofollow: bool, method: &str, body: &Value) -> ApiResult<Value> {
    let failed =
        |e: String| ApiError::internal(format!("plugin {}: {method}: {e}", sock.display()));
    let mut s = connect(sock, nofollow).map_err(|e| failed(e.to_string()))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| failed(e.to_string()))?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| failed(e.to_string()))?;
    let body = serde_json::to_vec(body).expect("serialises");
    let head = format!(
        "POST /{method} HTTP/1.1\r\nHost: plugin\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(&body))
        .map_err(|e| failed(e.to_string()))?;
    let mut raw = Vec::new();
    s.take(16 << 20)
        .read_to_end(&mut raw)
        .map_err(|e| failed(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| failed("no HTTP answer".into()))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| failed("no HTTP status".into()))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    let v: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    if let Some(e) = v["Err"].as_str().filter(|e| !e.is_empty()) {
        return Err(ApiError::internal(e.to_string()));
    }
    if !(200..300).contains(&status) {
        return Err(failed(format!("HTTP {status}: {}", body.trim())));
    }
    Ok(v)
}

/// Connects to a plugin's socket, retrying while it is missing or refuses (a
/// plugin starting or restarting), for up to [`CONNECT_PATIENCE`], as moby's
/// plugin client does.
fn connect(sock: &Path, nofollow: bool) -> std::io::Result<std::os::unix::net::UnixStream> {
    let start = std::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        let attempt = if nofollow {
            connect_nofollow(sock)
        } else {
            std::os::unix::net::UnixStream::connect(sock)
        };
        match attempt {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && start.elapsed() < CONNECT_PATIENCE =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            r => return r,
        }
    }
}

/// Connects to the socket `sock` names itself: opened `O_PATH|O_NOFOLLOW` (a
/// link is opened as the link), checked to be a socket, and connected through
/// its descriptor's /proc entry, which leads to that very inode.
pub(super) fn connect_nofollow(sock: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        sock,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a socket (a plugin's socket must be the socket itself, not a link)",
        ));
    }
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    std::os::unix::net::UnixStream::connect(path)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
