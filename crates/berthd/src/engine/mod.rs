//! The services behind the API. They take typed calls and never see HTTP.

pub mod archive;
mod changes;
pub mod containers;
mod create;
pub mod detach;
mod df;
mod dns;
pub mod endpoint;
pub mod events;
pub mod exec;
mod health;
pub mod images;
mod layers;
mod lifecycle;
mod limits;
pub mod logs;
pub mod mounts;
mod names;
mod netapi;
pub mod network;
pub mod pull;
mod push;
pub mod record;
pub mod restart;
pub mod security;
pub mod signal;
pub mod start;
mod stats;
pub mod system;
pub mod volumes;

use std::path::PathBuf;

/// How containers' root filesystems are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// An overlay of the image's layers under a writable layer.
    Overlay2,
    /// A full copy of the image per container: for data roots where overlayfs
    /// cannot work (on overlayfs itself).
    Vfs,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay2 => "overlay2",
            Driver::Vfs => "vfs",
        }
    }
}

/// Where the daemon keeps things, fixed at start.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// berth-shim on disk (bound read-only into `--init` containers).
    pub shim: PathBuf,
    /// The sealed in-memory copy every shim is run from.
    pub shim_memfd: std::sync::Arc<std::os::fd::OwnedFd>,
    /// Parent cgroup of every container, below each hierarchy's root.
    pub cgroup_parent: String,
    pub driver: Driver,
}

impl Paths {
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join(id)
    }

    /// A vfs container's root (its full copy of the image).
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("rootfs")
    }

    /// What holds a container's own changes: the overlay's writable layer, or the
    /// vfs copy.
    pub fn writable(&self, id: &str) -> PathBuf {
        match self.driver {
            Driver::Overlay2 => self.container_dir(id).join("upper"),
            Driver::Vfs => self.rootfs(id),
        }
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }
}

pub fn now_rfc3339() -> String {
    berth_runtime::timefmt::rfc3339_nano(std::time::SystemTime::now())
}

/// Parses Docker's RFC 3339 timestamps; the zero time and garbage give None.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
        .filter(|t| t.timestamp() > 0)
}
