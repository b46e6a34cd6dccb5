//! The protocol between berthd and a container's shim, over the shim's unix socket.
//!
//! berthd binds the socket and hands the listening fd to the shim as fd 3, so it can
//! connect before the shim even runs: those connections wait in the backlog and the
//! shim accepts them all before it releases the container, so no output is missed.
//!
//! A client's first byte says what it wants ([`WANT_STDOUT`] | [`WANT_STDERR`] |
//! [`WANT_STDIN`], [`WANT_CONTROL`], or [`WANT_MONITOR`]). Output clients then
//! receive Docker's multiplexed framing (an 8-byte header: stream, three zero bytes,
//! big-endian length), or raw bytes for a terminal, until the container's output
//! ends. A monitor receives one JSON line [`Started`], later one [`ExitRecord`] line,
//! then end of file. Stdin and control clients send [`input_frame`]s: data for the
//! container's stdin, closing it, or a terminal resize.

use serde::{Deserialize, Serialize};

pub const WANT_STDOUT: u8 = 0x01;
pub const WANT_STDERR: u8 = 0x02;
pub const WANT_STDIN: u8 = 0x04;
/// A connection that only sends control frames (resize).
pub const WANT_CONTROL: u8 = 0x08;
pub const WANT_MONITOR: u8 = 0x80;

/// Input frame kinds.
pub const IN_DATA: u8 = 0;
/// Close the container's stdin (the client's stdin ended and the container was
/// created with StdinOnce).
pub const IN_CLOSE: u8 = 1;
/// Resize the terminal: payload is rows and columns, big-endian u16 each.
pub const IN_RESIZE: u8 = 2;

/// One input frame: kind, big-endian u32 length, payload.
pub fn input_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reassembles input frames from a byte stream that may split them anywhere.
#[derive(Debug, Default)]
pub struct InputParser {
    buf: Vec<u8>,
}

impl InputParser {
    /// Frames larger than this are refused (a broken or hostile client).
    pub const MAX_FRAME: usize = 1 << 20;

    /// Adds bytes; returns the complete frames, or None if a frame is too large.
    pub fn push(&mut self, data: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= 5 {
            let len =
                u32::from_be_bytes(self.buf[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
            if len > Self::MAX_FRAME {
                return None;
            }
            if self.buf.len() - at - 5 < len {
                break;
            }
            out.push((self.buf[at], self.buf[at + 5..at + 5 + len].to_vec()));
            at += 5 + len;
        }
        self.buf.drain(..at);
        Some(out)
    }
}

/// Stream ids of Docker's multiplexed framing.
pub const STREAM_STDOUT: u8 = 1;
pub const STREAM_STDERR: u8 = 2;

/// The fd number the shim receives its listening socket on.
pub const LISTENER_FD: i32 = 3;
/// The fd number of the network namespace to join ([`crate::spec::NetworkMode::Join`]).
pub const NETNS_FD: i32 = 4;
/// The fd number of another container's PID namespace to join
/// ([`crate::spec::NsSource::Join`]).
pub const PIDNS_FD: i32 = 5;
/// The fd number of another container's IPC namespace to join.
pub const IPCNS_FD: i32 = 6;
/// The fd number of the container (a pidfd) whose user namespace a remapped
/// container joins with its other namespaces ([`crate::spec::Namespaces::user_join`]).
pub const USERNS_FD: i32 = 7;
/// The first fd number of the descriptors the shim holds ([`crate::spec::Spec::held_fds`]).
pub const HELD_FDS_START: i32 = 8;

/// The start outcome: the container's pid, or why it did not start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Started {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code Docker reports for this failure: 127 for a missing program, 126
    /// for one that cannot be executed, 128 for any other failure to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// How a container ended. Written by the shim to the spec's `exit_path` and sent to
/// monitors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitRecord {
    pub exit_code: i32,
    pub finished_at: String,
    pub oom_killed: bool,
}

/// Docker's 8-byte stream header for `len` bytes of `stream`.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let l = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let mut stream = input_frame(IN_DATA, b"hello");
        stream.extend(input_frame(IN_RESIZE, &[0, 24, 0, 80]));
        stream.extend(input_frame(IN_CLOSE, b""));
        for cut in 0..stream.len() {
            let mut p = InputParser::default();
            let mut frames = p.push(&stream[..cut]).unwrap();
            frames.extend(p.push(&stream[cut..]).unwrap());
            assert_eq!(
                frames,
                vec![
                    (IN_DATA, b"hello".to_vec()),
                    (IN_RESIZE, vec![0, 24, 0, 80]),
                    (IN_CLOSE, vec![])
                ]
            );
        }
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut p = InputParser::default();
        let mut f = vec![IN_DATA];
        f.extend_from_slice(&(InputParser::MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(p.push(&f).is_none());
    }
}
