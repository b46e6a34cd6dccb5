//! A plugin's propagated mount: a directory of the host the plugin sees at its
//! `PropagatedMount`, made a shared mount point (as moby does) so that what the
//! plugin mounts there can reach the host.

use crate::error::{ApiError, ApiResult};

/// Makes `dir` a shared mount point (a bind of itself), as moby does for a
/// plugin's propagated mount, so that what the plugin mounts there can reach
/// the host.
pub(super) fn share(dir: &std::path::Path) -> ApiResult<()> {
    use rustix::mount::{mount_bind, mount_change, MountPropagationFlags};
    std::fs::create_dir_all(dir)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    let is_mount = crate::daemon::mountinfo::is_mount_point(dir);
    if !is_mount {
        mount_bind(dir, dir)
            .map_err(|e| ApiError::internal(format!("binding {}: {e}", dir.display())))?;
    }
    mount_change(dir, MountPropagationFlags::SHARED)
        .map_err(|e| ApiError::internal(format!("sharing {}: {e}", dir.display())))
}

/// Undoes [`share`] (lazily: the plugin's own mounts below go with it).
pub(super) fn unshare(dir: &std::path::Path) {
    let _ = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH);
}
