//! The image subsystem: the image service (`service`), the API's views of images
//! (`query`), the registry client's pull and push, and the overlay layer helpers
//! the container service reads images through (`layers`).

pub mod layers;
mod limit;
pub mod pull;
mod push;
pub mod query;
pub mod service;

/// A failing step of the image service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no registry to pull from")]
    NoRegistry,
    #[error("the {what} task ended abnormally")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("resuming {digest}: the registry does not serve ranges (it answered {status})")]
    NoRanges { digest: String, status: String },
    #[error("downloading {digest} failed after {attempts} retries: {reason}")]
    Download {
        digest: String,
        attempts: u32,
        reason: String,
    },
    #[error("compressing layer {diff_id}")]
    Compress {
        diff_id: String,
        #[source]
        source: std::io::Error,
    },
}
