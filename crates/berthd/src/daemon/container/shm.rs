//! The /dev/shm of a shareable IPC namespace (`--ipc shareable`), as Docker keeps
//! it: a tmpfs berthd mounts under the container's directory (root's alone, in the
//! data root), bound into the container and into every container that joins its
//! IPC namespace (`--ipc container:X`), so that POSIX shared memory is shared with
//! the System V kind. Unmounted when the container exits.

use super::record::Record;
use super::Containers;
use crate::error::{ApiError, ApiResult};
use std::path::{Path, PathBuf};

/// Whether something is mounted on `dir` (it sits on another device than its
/// parent).
fn mounted(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(d), Some(Ok(p))) => d.dev() != p.dev(),
        _ => false,
    }
}

impl Containers {
    fn shm_dir(&self, id: &str) -> PathBuf {
        self.paths.container_dir(id).join("mounts").join("shm")
    }

    /// The tmpfs of a shareable container's /dev/shm, mounted if it is not.
    pub(super) fn mount_shm(&self, r: &Record) -> ApiResult<PathBuf> {
        let dir = self.shm_dir(&r.id);
        if mounted(&dir) {
            return Ok(dir);
        }
        let failed = |e: std::io::Error| {
            ApiError::internal(format!("mounting the shareable /dev/shm of {}: {e}", r.id))
        };
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let size = if r.host_config.shm_size > 0 {
            r.host_config.shm_size
        } else {
            64 << 20
        };
        use rustix::mount::MountFlags;
        let data =
            std::ffi::CString::new(format!("mode=1777,size={size}")).expect("no NUL in numbers");
        rustix::mount::mount(
            "shm",
            &dir,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            data.as_c_str(),
        )
        .map_err(|e| failed(e.into()))?;
        Ok(dir)
    }

    /// The container ended: its shareable /dev/shm goes (the containers that
    /// joined it ended with it, or keep their own reference to the mount).
    pub(super) fn unmount_shm(&self, id: &str) {
        let dir = self.shm_dir(id);
        if mounted(&dir) {
            if let Err(e) = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!(container = %id, error = %e, "unmounting the shareable /dev/shm");
            }
        }
    }

    /// What a container joining `key`'s IPC namespace gets as /dev/shm: the
    /// donor's shareable tmpfs, or the host's for a donor with the host's IPC;
    /// Docker's refusal for any other donor.
    pub(super) fn donor_shm(&self, key: &str) -> ApiResult<PathBuf> {
        let other = self.get(key)?;
        let mode = other.rec().host_config.ipc_mode.clone();
        match mode.as_str() {
            "host" => Ok(PathBuf::from("/dev/shm")),
            "shareable" if mounted(&self.shm_dir(&other.id)) => Ok(self.shm_dir(&other.id)),
            _ => Err(ApiError::invalid(format!(
                "can't join IPC of container {}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)",
                other.id
            ))),
        }
    }
}
