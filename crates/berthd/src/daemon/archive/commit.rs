//! `docker commit`: a container's changes as a new image.

use super::diff::{DELETED, RUNTIME_PATHS};
use super::tree::{add, Walk};
use super::Archive;
use crate::error::{ApiError, ApiResult};
use rustix::fs::{Mode, OFlags, ResolveFlags};

impl Archive {
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
        let c = self.containers.get(key)?;
        let r = c.snapshot();
        let base = self.store.resolve(&r.image)?;
        let refs: Vec<&str> = changes.iter().map(String::as_str).collect();
        let config = crate::daemon::image::query::apply_changes(r.config.clone(), &refs)?;
        let path = self.containers.cgroup_path(&r);
        // Without cgroups (rootless) there is no freezer: the container is read
        // running, as `--pause=false` would.
        let freeze =
            pause && c.is_running() && !r.state.paused && !self.containers.hierarchy().is_none();
        if freeze {
            self.containers
                .hierarchy()
                .freeze(&path, true)
                .map_err(|source| super::Error::Freeze {
                    id: c.id.clone(),
                    source,
                })?;
        }
        let tar = self.layer_of(&c.id).await;
        if freeze {
            let _ = self.containers.hierarchy().freeze(&path, false);
        }
        let tar = tar?;
        let store = self.store.clone();
        let created_by = std::iter::once(r.path.clone())
            .chain(r.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let created = crate::daemon::time::now_rfc3339();
        let id = tokio::task::spawn_blocking(move || -> ApiResult<String> {
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
        .map_err(|source| super::Error::Task {
            what: "commit",
            source,
        })??;
        self.containers.emit(&c, "commit", &[]);
        Ok(id)
    }

    /// A container's changes to its image, as a layer tar (what `commit` adds and
    /// what a build step makes). The container should not be changing it.
    pub async fn layer_of(&self, key: &str) -> ApiResult<Vec<u8>> {
        let c = self.containers.get(key)?;
        let upper = self.paths().writable(&c.id);
        // With vfs, the layer is made from the list of changes against the image.
        let vfs_changes = match self.paths().driver {
            crate::daemon::paths::Driver::Vfs => Some(self.changes(&c.id)?),
            crate::daemon::paths::Driver::Overlay2 => None,
        };
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || -> ApiResult<Vec<u8>> {
            let read_err = |e: std::io::Error| super::Error::Changes {
                id: id.clone(),
                source: e,
            };
            let root = rustix::fs::open(
                &upper,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| read_err(e.into()))?;
            let mut names: Vec<String> = rustix::fs::Dir::read_from(&root)
                .map_err(|e| read_err(e.into()))?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "." && n != "..")
                .collect();
            names.sort();
            let walk = Walk {
                layer: true,
                skip: RUNTIME_PATHS,
                devices: false,
                shallow: false,
                // The writable layer on disk: the container's own IDs already.
                ids: None,
            };
            let mut b = tar::Builder::new(Vec::new());
            match vfs_changes {
                None => {
                    for n in names {
                        add(&mut b, &root, &n, &n, &walk).map_err(read_err)?;
                    }
                }
                Some(list) => {
                    let walk = Walk {
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
                        add(&mut b, &dir, base, rel, &walk).map_err(read_err)?;
                    }
                }
            }
            b.into_inner().map_err(|e| read_err(e).into())
        })
        .await
        .map_err(|source| super::Error::Task {
            what: "reading a container's changes",
            source,
        })?
    }
}
