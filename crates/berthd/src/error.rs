//! The daemon's error: a category and Docker's words. [`status`] is the one place
//! where a category becomes an HTTP status.

use berth_api::ErrorKind;
use hyper::StatusCode;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
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
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// The HTTP status of an error category (moby's httpstatus.FromError).
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

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

impl From<berth_image::StoreError> for ApiError {
    fn from(e: berth_image::StoreError) -> ApiError {
        ApiError::new(e.kind(), chain(&e))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
