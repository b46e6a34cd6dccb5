//! berth's runtime library: it turns a [`spec::Spec`] (what a container is) into a
//! [`plan::Plan`] (the exact syscalls that make it), and performs that plan in a
//! freshly cloned child. It knows nothing of the daemon or of HTTP.
//!
//! All `unsafe` code of berth lives in [`sys`]; every other module, here and in the
//! other crates, is free of it (the compiler holds us to that).
#![deny(unsafe_code)]

pub mod caps;
pub mod cgroups;
pub mod devices;
pub mod plan;
pub mod sealed;
pub mod seccomp;
pub mod shimproto;
pub mod spec;
#[allow(unsafe_code)]
pub mod sys;
pub mod timefmt;
pub mod user;
