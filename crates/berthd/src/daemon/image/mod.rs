//! The image subsystem: the image service (`service`), the API's views of images
//! (`query`), the registry client's pull and push, and the overlay layer helpers
//! the container service reads images through (`layers`).

pub mod layers;
pub mod pull;
mod push;
pub mod query;
pub mod service;
