//! Commands run on a pseudo-terminal, for the interactive tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A command run on a pseudo-terminal, as a person at a terminal would run it.
pub struct PtyCommand {
    master: std::os::fd::OwnedFd,
    child: Child,
    seen: Vec<u8>,
}

impl PtyCommand {
    /// Runs `program args` with a new pty (rows x cols) as stdin, stdout and stderr.
    pub fn spawn(
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        size: (u16, u16),
    ) -> PtyCommand {
        use rustix::pty::OpenptFlags;
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .expect("openpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: size.0,
                ws_col: size.1,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("window size");
        let slave = rustix::pty::ioctl_tiocgptpeer(
            &master,
            OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
        )
        .expect("pty peer");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawning on a pty");
        PtyCommand {
            master,
            child,
            seen: Vec::new(),
        }
    }

    /// Types bytes.
    pub fn send(&mut self, data: &[u8]) {
        rustix::io::write(&self.master, data).expect("writing to the pty");
    }

    /// Reads until `needle` appears in what was printed since the last match (60 s
    /// at most), waiting on the pty with poll.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(i) = String::from_utf8_lossy(&self.seen).find(needle) {
                self.seen.drain(..i + needle.len());
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "{needle:?} never appeared; the terminal showed {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut fds = [PollFd::new(&self.master, PollFlags::IN)];
            let t = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: 0,
            };
            if poll(&mut fds, Some(&t)).unwrap_or(0) == 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            match rustix::io::read(&self.master, &mut buf) {
                Ok(n) if n > 0 => self.seen.extend_from_slice(&buf[..n]),
                // EIO: every holder of the terminal is gone.
                _ => panic!(
                    "the terminal closed before {needle:?}; it showed {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Waits for the command to exit and returns its exit code, reading what it
    /// writes meanwhile (a full terminal would block it); fails after 30 s with
    /// what the terminal showed.
    pub fn wait(mut self) -> i32 {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the command did not exit within 30 s; the terminal showed {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut fds = [PollFd::new(&self.master, PollFlags::IN)];
            let t = Timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            if poll(&mut fds, Some(&t)).unwrap_or(0) > 0 {
                let mut buf = [0u8; 4096];
                if let Ok(n) = rustix::io::read(&self.master, &mut buf) {
                    self.seen.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
}
