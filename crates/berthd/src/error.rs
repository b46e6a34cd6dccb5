//! What a service answers with when it fails: [`ApiError`], Docker's category and
//! words, and the typed error that caused it, kept (not flattened) for logs and
//! callers. Each subsystem has its own typed error (`volume::Error`,
//! `network::Error`, `container::Error`, `archive::Error`, `image::Error`): a
//! variant per failing step, with its source and the id or path it concerns.
//! Which category each gets, and which HTTP status each category is, is decided
//! in one place: `api/errors.rs`.

use berth_api::ErrorKind;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// What the client reads: Docker's words for a refusal, or the failing step
    /// and its causes.
    pub message: String,
    /// The typed error this answer stands for, if it came from one.
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for ApiError {
    fn eq(&self, other: &ApiError) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            cause: None,
        }
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::Conflict, m)
    }
    pub fn invalid(m: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::InvalidArgument, m)
    }
    pub fn not_implemented(m: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::NotImplemented, m)
    }
    pub fn internal(m: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::Internal, m)
    }

    /// An answer for a typed error: its category, and its text with every cause.
    pub(crate) fn caused_by<E: std::error::Error + Send + Sync + 'static>(
        kind: ErrorKind,
        e: E,
    ) -> ApiError {
        ApiError {
            kind,
            message: chain(&e),
            cause: Some(Arc::new(e)),
        }
    }

    /// The typed error behind this answer, to match on.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// An error and its sources, joined with ": ".
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub type ApiResult<T> = Result<T, ApiError>;
