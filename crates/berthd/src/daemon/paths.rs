//! Where the daemon keeps things, and how containers' filesystems are made.

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

/// Bytes of regular files under `dir`, without following symlinks.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}
