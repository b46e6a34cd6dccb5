//! The shim's side of berth-sidecar (see sidecar.rs): it starts one for a remote
//! log driver (and waits for it to connect, so that a receiver that is not there
//! fails the start) or for port proxies (handing it the held sockets), and feeds
//! it through a pipe that ends with the shim.

use berth_runtime::spec::PortProxy;
use berth_runtime::sys;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// A frame never exceeds PIPE_BUF: each write is then whole or not at all, which
/// the non-blocking mode relies on.
const FRAME_MAX: usize = 4096;
const HEADER: usize = 17;

pub struct Sidecar {
    pid: i32,
    stdin: Option<File>,
}

impl Sidecar {
    /// Ends it: its pipe closes, it sends what it has (a few seconds at most, its
    /// own limit) and exits.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        sys::wait_helper(self.pid);
    }
}

fn cstr(s: impl AsRef<[u8]>) -> io::Result<CString> {
    CString::new(s.as_ref().to_vec()).map_err(|_| io::Error::other("a NUL byte in an argument"))
}

/// The first line the helper writes (its `ok`, or why not).
fn first_line(out: OwnedFd) -> String {
    let mut f = File::from(out);
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 4096 && matches!(f.read(&mut b), Ok(1)) && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
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
    let argv = [
        cstr(sidecar.as_os_str().as_bytes())?,
        cstr("log")?,
        cstr(spec.as_os_str().as_bytes())?,
    ];
    let h = sys::spawn_helper(&argv, &[])?;
    let first = first_line(h.stdout);
    if first.trim() != "ok" {
        // It ends by itself after saying why (or having died).
        drop(h.stdin);
        sys::wait_helper(h.pid);
        return Err(io::Error::other(if first.is_empty() {
            "berth-sidecar ended without a word".to_string()
        } else {
            first.trim().trim_start_matches("error: ").to_string()
        }));
    }
    let stdin = File::from(h.stdin);
    if non_blocking {
        // The buffer Docker's non-blocking mode keeps: the pipe, made that big
        // (as far as the kernel's pipe-max-size allows).
        let _ = rustix::pipe::fcntl_setpipe_size(&stdin, buffer.min(1 << 20) as usize);
        rustix::io::ioctl_fionbio(&stdin, true)?;
    }
    let capacity = rustix::pipe::fcntl_getpipe_size(&stdin).unwrap_or(65536);
    Ok(LogPipe {
        car: Sidecar {
            pid: h.pid,
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

/// Starts `berth-sidecar proxy` serving `proxies` on the held sockets, which cross
/// to it at their own numbers.
pub fn start_proxies(sidecar: &Path, proxies: &[(OwnedFd, PortProxy)]) -> io::Result<Sidecar> {
    let mut argv = vec![cstr(sidecar.as_os_str().as_bytes())?, cstr("proxy")?];
    for (fd, p) in proxies {
        argv.push(cstr(format!(
            "{},{},{}",
            fd.as_raw_fd(),
            p.proto,
            p.target
        ))?);
    }
    let keep: Vec<_> = proxies.iter().map(|(fd, _)| fd.as_fd()).collect();
    let h = sys::spawn_helper(&argv, &keep)?;
    drop(h.stdout);
    Ok(Sidecar {
        pid: h.pid,
        stdin: Some(File::from(h.stdin)),
    })
}
