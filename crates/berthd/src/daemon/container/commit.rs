//! `docker diff`: what a container changed, read from its writable layer against
//! its image's layers. Never follows a symlink of the container's or the image's.

use crate::daemon::container::Containers;
use crate::error::{ApiError, ApiResult};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Docker's kinds: 0 modified, 1 added, 2 deleted.
pub const MODIFIED: u8 = 0;
pub const ADDED: u8 = 1;
pub const DELETED: u8 = 2;

/// Paths berth itself puts into every container's writable layer (mount points),
/// which Docker leaves out of a diff.
pub(super) const RUNTIME_PATHS: &[&str] = &[
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

impl Containers {
    pub fn changes(&self, key: &str) -> ApiResult<Vec<(String, u8)>> {
        let c = self.get(key)?;
        let image_id = c.rec().image.clone();
        let image = self
            .store
            .resolve(&image_id)
            .map_err(|e| ApiError::internal(format!("image of {}: {e}", c.id)))?;
        let lower = self.store.lower_dirs(&image);
        if self.paths.driver == crate::daemon::Driver::Vfs {
            return crate::daemon::image::layers::changes(
                &self.paths.rootfs(&c.id),
                &lower,
                RUNTIME_PATHS,
            )
            .map_err(|e| ApiError::internal(format!("comparing {} with its image: {e}", c.id)));
        }
        let mut out = Vec::new();
        walk(
            &self.paths.container_dir(&c.id).join("upper"),
            "",
            &lower,
            &mut out,
        );
        Ok(out)
    }
}

impl Containers {
    /// `docker commit`: the container's changes as a new layer over its image, with
    /// its configuration and `changes` (Dockerfile instructions) as the new image's.
    /// A running container is frozen while its layer is read, unless `pause` is false.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        key: &str,
        tag: Option<String>,
        comment: String,
        author: String,
        changes: Vec<String>,
        pause: bool,
    ) -> ApiResult<String> {
        let c = self.get(key)?;
        let r = c.snapshot();
        let base = self.store.resolve(&r.image)?;
        let refs: Vec<&str> = changes.iter().map(String::as_str).collect();
        let config = crate::daemon::image::apply_changes(r.config.clone(), &refs)?;
        let path = format!("{}/{}", self.paths.cgroup_parent.trim_matches('/'), c.id);
        let freeze = pause && c.is_running() && !r.state.paused;
        if freeze {
            self.hierarchy.freeze(&path, true).map_err(|e| {
                ApiError::internal(format!(
                    "pausing {} to commit: {}",
                    c.id,
                    crate::error::chain(&e)
                ))
            })?;
        }
        let upper = self.paths.writable(&c.id);
        // With vfs, the layer is made from the list of changes against the image.
        let vfs_changes = match self.paths.driver {
            crate::daemon::Driver::Vfs => Some(self.changes(&c.id)?),
            crate::daemon::Driver::Overlay2 => None,
        };
        let store = self.store.clone();
        let created_by = std::iter::once(r.path.clone())
            .chain(r.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let created = crate::daemon::now_rfc3339();
        let result = tokio::task::spawn_blocking(move || -> ApiResult<String> {
            let root = rustix::fs::open(
                &upper,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ApiError::internal(format!("opening {}: {e}", upper.display())))?;
            let mut names: Vec<String> = rustix::fs::Dir::read_from(&root)
                .map_err(|e| ApiError::internal(format!("reading {}: {e}", upper.display())))?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "." && n != "..")
                .collect();
            names.sort();
            let walk = crate::daemon::container::archive::Walk {
                layer: true,
                skip: RUNTIME_PATHS,
                devices: false,
                shallow: false,
            };
            let mut b = tar::Builder::new(Vec::new());
            let read_err = |e: std::io::Error| {
                ApiError::internal(format!("reading the container's changes: {e}"))
            };
            match vfs_changes {
                None => {
                    for n in names {
                        crate::daemon::container::archive::add(&mut b, &root, &n, &n, &walk)
                            .map_err(read_err)?;
                    }
                }
                Some(list) => {
                    let walk = crate::daemon::container::archive::Walk {
                        shallow: true,
                        ..walk
                    };
                    for (path, kind) in list {
                        let rel = path.trim_start_matches('/');
                        let (parent, base) = rel.rsplit_once('/').unwrap_or(("", rel));
                        if kind == DELETED {
                            let wh = if parent.is_empty() {
                                format!(".wh.{base}")
                            } else {
                                format!("{parent}/.wh.{base}")
                            };
                            let mut h = tar::Header::new_gnu();
                            h.set_mode(0o644);
                            h.set_size(0);
                            h.set_entry_type(tar::EntryType::Regular);
                            b.append_data(&mut h, wh, std::io::empty())
                                .map_err(read_err)?;
                            continue;
                        }
                        // The parent, opened beneath the root without following a symlink.
                        let dir = if parent.is_empty() {
                            rustix::fs::openat(
                                &root,
                                ".",
                                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                                Mode::empty(),
                            )
                        } else {
                            rustix::fs::openat2(
                                &root,
                                parent,
                                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                                Mode::empty(),
                                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                            )
                        }
                        .map_err(|e| read_err(e.into()))?;
                        crate::daemon::container::archive::add(&mut b, &dir, base, rel, &walk)
                            .map_err(read_err)?;
                    }
                }
            }
            let tar = b
                .into_inner()
                .map_err(|e| ApiError::internal(format!("building the layer: {e}")))?;
            store
                .commit(
                    &base,
                    &tar[..],
                    config,
                    tag.as_deref(),
                    &comment,
                    &author,
                    &created_by,
                    &created,
                )
                .map_err(ApiError::from)
        })
        .await
        .map_err(|e| ApiError::internal(format!("commit task: {e}")));
        if freeze {
            let _ = self.hierarchy.freeze(&path, false);
        }
        let id = result??;
        self.emit(&c, "commit", &[]);
        Ok(id)
    }
}
