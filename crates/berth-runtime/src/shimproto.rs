//! The protocol between berthd and a container's shim, over the shim's unix socket.
//!
//! berthd binds the socket and hands the listening fd to the shim as fd 3, so it can
//! connect before the shim even runs: those connections wait in the backlog and the
//! shim accepts them all before it releases the container, so no output is missed.
//!
//! A client's first byte says what it wants ([`WANT_STDOUT`] | [`WANT_STDERR`], or
//! [`WANT_MONITOR`]). Output clients then receive Docker's multiplexed framing (an
//! 8-byte header: stream, three zero bytes, big-endian length) until the container's
//! output ends. A monitor receives one JSON line [`Started`], later one [`ExitRecord`]
//! line, then end of file.

use serde::{Deserialize, Serialize};

pub const WANT_STDOUT: u8 = 0x01;
pub const WANT_STDERR: u8 = 0x02;
pub const WANT_MONITOR: u8 = 0x80;

/// Stream ids of Docker's multiplexed framing.
pub const STREAM_STDOUT: u8 = 1;
pub const STREAM_STDERR: u8 = 2;

/// The fd number the shim receives its listening socket on.
pub const LISTENER_FD: i32 = 3;

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
