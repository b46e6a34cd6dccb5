//! Starting a berth-shim: the one way berthd runs a process in a container, for
//! containers, their execs and managed plugins alike. The shim gets its spec in
//! a run directory and a pre-bound listening socket; berthd connects the monitor
//! (and any attaches) before the shim runs, so nothing the process writes is
//! missed, and reads the start report from the monitor.

use berth_runtime::shimproto::{Started, LISTENER_FD, WANT_MONITOR};
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step} (shim in {})", run.display())]
    Io {
        run: PathBuf,
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("berth-shim failed: {log}")]
    Failed { log: String },
    #[error("bad start report from berth-shim in {}", run.display())]
    Report {
        run: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("a shim is still running in {}: refusing to start a second copy", run.display())]
    Running { run: PathBuf },
}

/// An attach connected before the process runs: what it wants from the shim, and
/// who receives the connection.
pub type EarlyAttach = (u8, tokio::sync::oneshot::Sender<UnixStream>);

/// What a new shim needs besides its spec.
pub struct Launch<'a> {
    /// The sealed copy of berth-shim every shim is run from (never the file on disk).
    pub shim_memfd: &'a OwnedFd,
    /// `--exec`: the spec is an exec's.
    pub exec: bool,
    /// The run directory (made afresh; holds the spec, the socket, the shim's log).
    pub run: &'a Path,
    /// Descriptors handed to the shim, at the numbers given.
    pub fds: Vec<(OwnedFd, RawFd)>,
}

/// Whether a shim answers on `run`'s socket: the kernel's word on whether it runs.
pub fn alive(run: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(run.join("sock")).is_ok()
}

/// Starts a shim on `spec_json`, with its monitor and the attaches `attachers`
/// hands over already connected; returns its start report and the monitor.
pub async fn spawn(
    launch: Launch<'_>,
    spec_json: Vec<u8>,
    attachers: impl FnOnce() -> Vec<EarlyAttach>,
) -> Result<(Started, BufReader<UnixStream>), Error> {
    let run = launch.run;
    let ioerr = |what: &str, source: std::io::Error| Error::Io {
        run: run.to_path_buf(),
        step: what.to_string(),
        source,
    };
    // Never a second shim over a live one, whatever a record says.
    if alive(run) {
        return Err(Error::Running {
            run: run.to_path_buf(),
        });
    }
    let _ = std::fs::remove_dir_all(run);
    std::fs::create_dir_all(run).map_err(|e| ioerr("creating the run directory", e))?;
    let spec_path = run.join("spec.json");
    std::fs::write(&spec_path, spec_json).map_err(|e| ioerr("writing the spec", e))?;
    let sock = run.join("sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock)
        .map_err(|e| ioerr(&format!("binding {}", sock.display()), e))?;
    // Connections made now wait in the backlog; the shim accepts them all
    // before it lets the process run, so no output is missed.
    let mut monitor = UnixStream::connect(&sock)
        .await
        .map_err(|e| ioerr("connecting to the shim", e))?;
    monitor
        .write_all(&[WANT_MONITOR])
        .await
        .map_err(|e| ioerr("connecting to the shim", e))?;
    for (want, tx) in attachers() {
        if let Ok(mut s) = UnixStream::connect(&sock).await {
            if s.write_all(&[want]).await.is_ok() {
                let _ = tx.send(s);
            }
        }
    }
    let log = std::fs::File::create(run.join("shim.log"))
        .map_err(|e| ioerr("creating the shim log", e))?;
    let mut cmd = std::process::Command::new(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(launch.shim_memfd)
    ));
    std::os::unix::process::CommandExt::arg0(&mut cmd, "berth-shim");
    if launch.exec {
        cmd.arg("--exec");
    }
    cmd.arg(&spec_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let mut fds = launch.fds;
    fds.push((listener.into(), LISTENER_FD));
    berth_runtime::sys::pass_fds(&mut cmd, fds);
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| ioerr("starting berth-shim", e))?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let mut reader = BufReader::new(monitor);
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .await
        .map_err(|e| ioerr("reading from the shim", e))?;
    if n == 0 {
        let log = std::fs::read_to_string(run.join("shim.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(run);
        return Err(Error::Failed {
            log: log.trim().to_string(),
        });
    }
    let started: Started = serde_json::from_str(&line).map_err(|source| Error::Report {
        run: run.to_path_buf(),
        source,
    })?;
    Ok((started, reader))
}

/// Connects a new monitor to a running shim in `run` (one a previous berthd
/// started): its process's pid and the monitor, which reports the exit.
pub async fn reattach(run: &Path) -> Option<(i32, BufReader<UnixStream>)> {
    let mut s = UnixStream::connect(run.join("sock")).await.ok()?;
    s.write_all(&[WANT_MONITOR]).await.ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    let pid = serde_json::from_str::<Started>(&line).ok()?.pid?;
    Some((pid, r))
}
