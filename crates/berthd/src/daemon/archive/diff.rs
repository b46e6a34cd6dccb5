//! `docker diff`: what a container changed, read from its writable layer against
//! its image's layers. Never follows a symlink of the container's or the image's.

use super::Archive;
use crate::error::ApiResult;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Docker's kinds: 0 modified, 1 added, 2 deleted.
pub const MODIFIED: u8 = 0;
pub const ADDED: u8 = 1;
pub const DELETED: u8 = 2;

/// Paths berth itself puts into every container's writable layer (mount points),
/// which Docker leaves out of a diff.
pub const RUNTIME_PATHS: &[&str] = &[
    "/proc",
    "/dev",
    "/sys",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/sbin/docker-init",
];

/// Whether `rel` is present in the image: looked up in the layers topmost first; a
/// whiteout hides it.
fn in_image(lower: &[PathBuf], rel: &str) -> bool {
    for layer in lower {
        let Ok(root) = rustix::fs::open(
            layer,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let flags = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        match rustix::fs::openat2(
            &root,
            rel.trim_start_matches('/'),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            flags,
        ) {
            Ok(fd) => {
                let whiteout = rustix::fs::fstat(&fd)
                    .map(|st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::CharacterDevice
                            && st.st_rdev == 0
                    })
                    .unwrap_or(false);
                return !whiteout;
            }
            Err(rustix::io::Errno::NOENT) => continue,
            // Behind a symlink or not a directory in this layer: not visible there.
            Err(_) => return false,
        }
    }
    false
}

fn walk(dir: &Path, rel: &str, lower: &[PathBuf], out: &mut Vec<(String, u8)>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut any = false;
    let mut items: Vec<_> = entries.flatten().collect();
    items.sort_by_key(|e| e.file_name());
    for e in items {
        let path = format!("{rel}/{}", e.file_name().to_string_lossy());
        if RUNTIME_PATHS.contains(&path.as_str()) {
            continue;
        }
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            out.push((path, DELETED));
            any = true;
            continue;
        }
        let existed = in_image(lower, &path);
        if meta.is_dir() {
            let at = out.len();
            let children = walk(&e.path(), &path, lower, out);
            // A directory counts when it is new, or when something in it changed;
            // one made only to hold berth's mount points does not.
            let holds_runtime = RUNTIME_PATHS
                .iter()
                .any(|r| r.starts_with(&format!("{path}/")));
            if children || (!existed && !holds_runtime) {
                out.insert(at, (path, if existed { MODIFIED } else { ADDED }));
                any = true;
            }
        } else {
            out.push((path, if existed { MODIFIED } else { ADDED }));
            any = true;
        }
    }
    any
}

impl Archive {
    pub fn changes(&self, key: &str) -> ApiResult<Vec<(String, u8)>> {
        let c = self.containers.get(key)?;
        let image_id = c.rec().image.clone();
        let image = self
            .store
            .resolve(&image_id)
            .map_err(|source| super::Error::Image {
                id: c.id.clone(),
                source,
            })?;
        let lower = self.store.lower_dirs(&image);
        if self.paths().driver == crate::daemon::paths::Driver::Vfs {
            return crate::daemon::image::layers::changes(
                &self.paths().rootfs(&c.id),
                &lower,
                RUNTIME_PATHS,
            )
            .map_err(|source| {
                super::Error::Compare {
                    id: c.id.clone(),
                    source,
                }
                .into()
            });
        }
        let mut out = Vec::new();
        walk(
            &self.paths().container_dir(&c.id).join("upper"),
            "",
            &lower,
            &mut out,
        );
        Ok(out)
    }
}
