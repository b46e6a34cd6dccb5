//! The shim's side of berth-sidecar (see sidecar.rs): it starts one for a remote
//! log driver (and waits for it to connect, so that a receiver that is not there
//! fails the start) or for port proxies (handing it the held sockets), and feeds
//! it through a pipe that ends with the shim.

use berth_runtime::spec::PortProxy;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// A frame never exceeds PIPE_BUF: each write is then whole or not at all, which
/// the non-blocking mode relies on.
const FRAME_MAX: usize = 4096;
const HEADER: usize = 17;

pub struct Sidecar {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Sidecar {
    /// Ends it: its pipe closes, it sends what it has (a few seconds at most, its
    /// own limit) and exits.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A remote log driver's sidecar, connected.
pub struct LogPipe {
    car: Sidecar,
    non_blocking: bool,
    /// The pipe's size, for the non-blocking mode's room check.
    capacity: usize,
}

/// Starts `berth-sidecar log SPEC` and waits for its `ok`.
pub fn start_log(
    sidecar: &Path,
    spec: &Path,
    non_blocking: bool,
    buffer: u64,
) -> io::Result<LogPipe> {
    let mut child = Command::new(sidecar)
        .arg("log")
        .arg(spec)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut first = String::new();
    io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut first)?;
    if first.trim() != "ok" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(
            first.trim().trim_start_matches("error: ").to_string(),
        ));
    }
    let stdin = child.stdin.take().expect("piped");
    if non_blocking {
        // The buffer Docker's non-blocking mode keeps: the pipe, made that big
        // (as far as the kernel's pipe-max-size allows).
        let _ = rustix::pipe::fcntl_setpipe_size(&stdin, buffer.min(1 << 20) as usize);
        rustix::io::ioctl_fionbio(&stdin, true)?;
    }
    let capacity = rustix::pipe::fcntl_getpipe_size(&stdin).unwrap_or(65536);
    Ok(LogPipe {
        car: Sidecar {
            child,
            stdin: Some(stdin),
        },
        non_blocking,
        capacity,
    })
}

impl LogPipe {
    /// One line (without its newline); a piece of a longer line is `partial`.
    /// It crosses in frames of at most PIPE_BUF, the sidecar joining them again.
    /// In non-blocking mode a line the pipe has no room for is dropped whole.
    pub fn send(&mut self, line: &[u8], stderr: bool, time: SystemTime, partial: bool) {
        let Some(w) = self.car.stdin.as_mut() else {
            return;
        };
        let t = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let chunks: Vec<&[u8]> = if line.is_empty() {
            vec![line]
        } else {
            line.chunks(FRAME_MAX - HEADER).collect()
        };
        if self.non_blocking {
            let queued = rustix::io::ioctl_fionread(&*w).unwrap_or(0) as usize;
            if queued + line.len() + chunks.len() * HEADER > self.capacity {
                return;
            }
        }
        let last = chunks.len() - 1;
        for (i, c) in chunks.into_iter().enumerate() {
            // 1: stderr; 2: a piece of a longer line; 4: the next frame goes on.
            let mut flags = u8::from(stderr);
            if partial {
                flags |= 2;
            }
            if i < last {
                flags |= 4;
            }
            let mut f = Vec::with_capacity(HEADER + c.len());
            f.push(flags);
            f.extend_from_slice(&t.as_secs().to_le_bytes());
            f.extend_from_slice(&t.subsec_nanos().to_le_bytes());
            f.extend_from_slice(&(c.len() as u32).to_le_bytes());
            f.extend_from_slice(c);
            match w.write_all(&f) {
                Ok(()) => {}
                Err(e) if self.non_blocking && e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The sidecar is gone: no more remote logging.
                    self.car.stdin = None;
                    return;
                }
            }
        }
    }

    pub fn finish(mut self) {
        if self.non_blocking {
            // Blocking again: what is queued is handed over before the end.
            if let Some(w) = &self.car.stdin {
                let _ = rustix::io::ioctl_fionbio(w, false);
            }
        }
        let _ = self.car.stdin.as_mut().map(Write::flush);
        self.car.finish();
    }
}

/// Starts `berth-sidecar proxy` serving `proxies` on the held sockets.
pub fn start_proxies(sidecar: &Path, proxies: &[(OwnedFd, PortProxy)]) -> io::Result<Sidecar> {
    let mut cmd = Command::new(sidecar);
    cmd.arg("proxy");
    // The sockets cross to it at their own numbers: open across exec for this
    // one spawn (nothing else is started meanwhile), close-on-exec again after.
    for (fd, p) in proxies {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
        cmd.arg(format!("{},{},{}", fd.as_raw_fd(), p.proto, p.target));
    }
    let spawned = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    for (fd, _) in proxies {
        let _ = rustix::io::fcntl_setfd(fd.as_fd(), rustix::io::FdFlags::CLOEXEC);
    }
    let mut child = spawned?;
    let stdin = child.stdin.take();
    Ok(Sidecar { child, stdin })
}
