//! Wire types of the Docker Engine API, as the API's swagger defines them. No I/O and
//! no knowledge of the daemon: the daemon, the CLI and the tests share these.
#![forbid(unsafe_code)]

mod container;
mod image;
mod system;

pub use container::*;
pub use image::*;
pub use system::*;

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

/// One message of a JSON progress stream (load, import, pull).
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
}

/// Parses "1.44" into (1, 44) for comparison.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    NotImplemented,
    Internal,
}
