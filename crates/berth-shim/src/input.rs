//! The container's input: stdin bytes from attached clients, written without ever
//! blocking the shim (a container that does not read its stdin must not stop its
//! output from flowing), stdin closing, and terminal resizes.

use berth_runtime::shimproto::{IN_CLOSE, IN_DATA, IN_RESIZE};
use std::os::fd::OwnedFd;

/// Beyond this much unwritten input, attached clients are not read until the
/// container catches up.
const HIGH_WATER: usize = 1 << 20;

pub(crate) struct Stdin {
    fd: Option<OwnedFd>,
    pending: Vec<u8>,
    close_when_flushed: bool,
    terminal: bool,
}

impl Stdin {
    /// `fd` is the write end of the container's stdin pipe, or the terminal's
    /// master; None when the container has no open stdin.
    pub(crate) fn new(fd: Option<OwnedFd>, terminal: bool) -> Stdin {
        if let Some(f) = &fd {
            let _ = rustix::fs::fcntl_setfl(f, rustix::fs::OFlags::NONBLOCK);
        }
        Stdin {
            fd,
            pending: Vec::new(),
            close_when_flushed: false,
            terminal,
        }
    }

    pub(crate) fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    pub(crate) fn wants_to_write(&self) -> bool {
        self.fd.is_some() && !self.pending.is_empty()
    }

    pub(crate) fn full(&self) -> bool {
        self.pending.len() >= HIGH_WATER
    }

    /// Applies one input frame. `stdin` says whether the client may write stdin
    /// (a control connection may only resize).
    pub(crate) fn apply(&mut self, kind: u8, payload: &[u8], stdin: bool) {
        match kind {
            IN_DATA if stdin && self.fd.is_some() && !self.close_when_flushed => {
                self.pending.extend_from_slice(payload);
                self.flush();
            }
            // A terminal is not closed when one client's input ends (Docker's rule).
            IN_CLOSE if stdin && !self.terminal => {
                self.close_when_flushed = true;
                self.flush();
            }
            IN_RESIZE if self.terminal && payload.len() == 4 => {
                if let Some(fd) = &self.fd {
                    let ws = rustix::termios::Winsize {
                        ws_row: u16::from_be_bytes([payload[0], payload[1]]),
                        ws_col: u16::from_be_bytes([payload[2], payload[3]]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(fd, ws);
                }
            }
            _ => {}
        }
    }

    /// Writes what the container will take now; closes stdin once everything asked
    /// for is written and a close was requested. A dead reader drops the input.
    pub(crate) fn flush(&mut self) {
        let Some(fd) = &self.fd else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match rustix::io::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    self.pending.clear();
                    self.fd = None;
                    return;
                }
            }
        }
        if self.close_when_flushed {
            self.fd = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_close_and_never_block() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let mut s = Stdin::new(Some(w), false);
        s.apply(IN_DATA, b"hello", true);
        s.apply(IN_DATA, b"ignored from a control connection", false);
        // Far more than a pipe holds: the rest waits, nothing blocks.
        s.apply(IN_DATA, &vec![b'x'; 200_000], true);
        assert!(s.wants_to_write());
        let mut f = std::fs::File::from(r);
        let mut got = vec![0u8; 5];
        f.read_exact(&mut got).unwrap();
        assert_eq!(got, b"hello");
        s.apply(IN_CLOSE, b"", true);
        let mut rest = Vec::new();
        while s.fd().is_some() {
            let mut chunk = vec![0u8; 65536];
            let n = f.read(&mut chunk).unwrap();
            rest.extend_from_slice(&chunk[..n]);
            s.flush();
        }
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 200_000, "all input arrives, then end of file");
    }
}
