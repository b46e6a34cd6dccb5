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

/// Whether this process is in a user namespace other than the host's (a
/// rootless berthd and its shims): its uid_map is not the identity of every ID.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}
