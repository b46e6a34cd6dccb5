//! Wire types of the Docker Engine API, as the API's swagger defines them. No I/O and
//! no knowledge of the daemon: the daemon, the CLI and the tests share these.
#![forbid(unsafe_code)]

mod container;
mod image;
mod network;
mod system;
mod volume;

pub use container::*;
pub use image::*;
pub use network::*;
pub use system::*;
pub use volume::*;

use serde::{Deserialize, Serialize};

/// The newest API version berth speaks (Docker Engine 28.3).
pub const API_VERSION: &str = "1.51";
/// The oldest API version berth accepts (dockerd's default minimum since v25).
pub const MIN_API_VERSION: &str = "1.24";

/// The body of every error response: `{"message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorResponse {
    pub message: String,
}

/// One message of a JSON progress stream (load, import, pull, build).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Side results (a build's image ID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// Parses "1.44" into (1, 44) for comparison.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Docker's units.RAMInBytes: "64m", "1g", "512k", "1024b", plain bytes (binary
/// multiples). None for anything else.
pub fn parse_size(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| x.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num.parse().ok().filter(|n: &f64| *n >= 0.0)?;
    Some((n * mult as f64) as i64)
}

/// Docker's units.HumanDuration, used in `Status` ("Up 3 minutes") and by clients.
pub fn human_duration(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        s if (s as f64 / 3600.0).round() as i64 == 1 => "About an hour".into(),
        s if s / 3600 < 48 => plural((s as f64 / 3600.0).round() as i64, "hour"),
        s if s / 3600 < 24 * 7 * 2 => plural(s / 86400, "day"),
        s if s / 3600 < 24 * 30 * 2 => plural(s / (86400 * 7), "week"),
        s if s / 3600 < 24 * 365 * 2 => plural(s / (86400 * 30), "month"),
        s => plural(s / (86400 * 365), "year"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512kb"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1k"), None);
    }

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(300), "5 minutes");
        assert_eq!(human_duration(3660), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(parse_version("1.9") < parse_version("1.24"));
        assert!(parse_version(API_VERSION) > parse_version(MIN_API_VERSION));
        assert_eq!(parse_version("x"), None);
    }
}

/// The category of every berth error. The daemon turns it into an HTTP status in
/// exactly one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    InvalidArgument,
    Forbidden,
    /// Credentials refused (a registry login).
    Unauthorized,
    NotImplemented,
    /// The engine is not in the state the request needs (not a swarm manager).
    Unavailable,
    Internal,
}
