//! `docker cp`: `HEAD/GET/PUT /containers/{id}/archive`. Every path is resolved by
//! the kernel inside the container's root (`openat2(RESOLVE_IN_ROOT)` on an fd of
//! it), and everything after works on fds: a symlink, even one swapped during the
//! copy, never leads out (the CVE-2018-15664 class). berthd runs no program of the
//! container's to copy (the CVE-2019-14271 class).

use super::tree::{add, Walk};
use super::Archive;
use crate::daemon::stream::ChannelWriter;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::os::fd::OwnedFd;
use tokio::sync::mpsc;

/// What `X-Docker-Container-Path-Stat` carries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's os.FileMode: permission bits plus type flags.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

fn go_mode(st: &rustix::fs::Stat) -> u32 {
    let m = st.st_mode;
    let mut mode = m & 0o777;
    if m & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if m & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if m & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    mode |= match FileType::from_raw_mode(m) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        _ => 0,
    };
    mode
}

fn mtime(st: &rustix::fs::Stat) -> String {
    chrono::DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A path inside the container: the directory holding it (resolved in-root) and
/// its last component, never followed ("" for the root itself).
struct Target {
    parent: OwnedFd,
    name: String,
    shown: String,
    /// A running container's own user namespace (`--userns-remap`): what it
    /// sees is the host's IDs shifted.
    ids: Option<IdMap>,
}

use berth_runtime::spec::IdMap;

/// Holds a stopped container's op lock while a copy uses its detached rootfs.
type Hold = Option<tokio::sync::OwnedMutexGuard<()>>;

impl Archive {
    /// An fd of the container's root: a running container's as its processes see
    /// it; for a stopped one, its overlay mounted detached (fsopen/fsmount: in no
    /// mount table, gone when the fd closes), with the container kept from starting
    /// meanwhile.
    async fn container_root(
        &self,
        key: &str,
    ) -> ApiResult<(OwnedFd, String, String, Hold, Option<IdMap>)> {
        let c = self.containers.get(key)?;
        let guard = c.op.clone().lock_owned().await;
        let r = c.snapshot();
        if r.state.status == crate::daemon::container::record::Status::Running {
            drop(guard);
            let root = rustix::fs::open(
                format!("/proc/{}/root", r.state.pid),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|source| super::Error::NotRunning {
                name: r.name.clone(),
                source,
            })?;
            let ids =
                IdMap::of_process(r.state.pid as i32).map_err(|e| super::Error::NotRunning {
                    name: r.name.clone(),
                    source: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
                })?;
            return Ok((root, r.config.working_dir, r.name, None, ids));
        }
        if self.paths().driver == crate::daemon::paths::Driver::Vfs {
            let root = rustix::mount::open_tree(
                rustix::fs::CWD,
                self.paths().rootfs(&c.id),
                rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
                    | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | rustix::mount::OpenTreeFlags::AT_RECURSIVE,
            )
            .map_err(|source| super::Error::Root {
                name: r.name.clone(),
                step: "opening",
                source,
            })?;
            return Ok((root, r.config.working_dir, r.name, Some(guard), None));
        }
        let image = self.store.resolve(&r.image)?;
        let dir = self.paths().container_dir(&c.id);
        let mut lower: Vec<String> = self
            .store
            .lower_dirs(&image)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if lower.is_empty() {
            lower.push(dir.join("empty").display().to_string());
        }
        let mount = |per_layer: bool| -> rustix::io::Result<OwnedFd> {
            use rustix::mount::{
                fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
                MountAttrFlags,
            };
            let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
            // One layer at a time (`lowerdir+`, Linux 6.8+): the kernel refuses a
            // colon list of several through fsconfig; older kernels take the list.
            if per_layer {
                for l in &lower {
                    fsconfig_set_string(&fs, "lowerdir+", l.as_str())?;
                }
            } else {
                fsconfig_set_string(&fs, "lowerdir", lower.join(":"))?;
            }
            fsconfig_set_string(&fs, "upperdir", dir.join("upper"))?;
            fsconfig_set_string(&fs, "workdir", dir.join("work"))?;
            // In a user namespace (rootless) overlayfs keeps its attributes in user.*.
            if berth_runtime::in_user_namespace() {
                rustix::mount::fsconfig_set_flag(&fs, "userxattr")?;
            }
            fsconfig_create(&fs)?;
            fsmount(
                &fs,
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
            )
        };
        let root = mount(lower.len() > 1)
            .or_else(|_| mount(false))
            .map_err(|source| super::Error::Root {
                name: r.name.clone(),
                step: "mounting",
                source,
            })?;
        Ok((root, r.config.working_dir, r.name, Some(guard), None))
    }

    async fn target(&self, key: &str, path: &str) -> ApiResult<(Target, Hold)> {
        let (root, workdir, cname, hold, ids) = self.container_root(key).await?;
        let abs = if path.starts_with('/') {
            path.to_string()
        } else {
            format!(
                "{}/{path}",
                if workdir.is_empty() {
                    ""
                } else {
                    workdir.trim_end_matches('/')
                }
            )
        };
        let trimmed = abs.trim_end_matches('/');
        let (dir, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        let not_found = || {
            ApiError::not_found(format!(
                "Could not find the file {path} in container {cname}"
            ))
        };
        let parent = rustix::fs::openat2(
            &root,
            if dir.is_empty() {
                "."
            } else {
                dir.trim_start_matches('/')
            },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|_| not_found())?;
        let t = Target {
            parent,
            name: name.to_string(),
            shown: if name.is_empty() {
                "/".into()
            } else {
                name.to_string()
            },
            ids,
        };
        if !t.name.is_empty() && t.name != "." {
            rustix::fs::statat(&t.parent, t.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|_| not_found())?;
        }
        Ok((t, hold))
    }

    pub async fn archive_stat(&self, key: &str, path: &str) -> ApiResult<PathStat> {
        let (t, _hold) = self.target(key, path).await?;
        stat_of(&t)
    }

    /// The path as a tar, streamed.
    pub async fn archive_get(
        &self,
        key: &str,
        path: &str,
    ) -> ApiResult<(PathStat, mpsc::Receiver<Bytes>)> {
        let (t, hold) = self.target(key, path).await?;
        let st = stat_of(&t)?;
        let (tx, rx) = mpsc::channel(8);
        tokio::task::spawn_blocking(move || {
            let _hold = hold;
            let mut b = tar::Builder::new(ChannelWriter::new(tx));
            let name = if t.name.is_empty() {
                "."
            } else {
                t.name.as_str()
            };
            let walk = Walk {
                ids: t.ids.as_ref(),
                ..Walk::default()
            };
            if let Err(e) = add(&mut b, &t.parent, name, &t.shown, &walk) {
                tracing::warn!(error = %e, "copying from a container");
                return;
            }
            let _ = b.finish();
        });
        Ok((st, rx))
    }

    /// `docker export`: the container's filesystem as a tar, without berth's mount
    /// points (and so without the container's own mounts under them).
    pub async fn export(&self, key: &str) -> ApiResult<mpsc::Receiver<Bytes>> {
        let (root, _, _, hold, ids) = self.container_root(key).await?;
        let root = rustix::fs::openat(
            &root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| super::Error::Root {
            name: key.to_string(),
            step: "opening the root of",
            source,
        })?;
        let (tx, rx) = mpsc::channel(8);
        tokio::task::spawn_blocking(move || {
            let _hold = hold;
            let walk = Walk {
                skip: super::diff::RUNTIME_PATHS,
                devices: true,
                ids: ids.as_ref(),
                ..Walk::default()
            };
            let mut b = tar::Builder::new(ChannelWriter::new(tx));
            let names: Vec<String> = match rustix::fs::Dir::read_from(&root) {
                Ok(d) => d
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "." && n != "..")
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "export");
                    return;
                }
            };
            let mut names = names;
            names.sort();
            for n in names {
                if let Err(e) = add(&mut b, &root, &n, &n, &walk) {
                    tracing::warn!(error = %e, "export");
                    return;
                }
            }
            let _ = b.finish();
        });
        Ok(rx)
    }

    /// Extracts a tar into the directory `path`.
    pub async fn archive_put<R: Read + Send + 'static>(
        &self,
        key: &str,
        path: &str,
        tar: R,
    ) -> ApiResult<()> {
        let (t, hold) = self.target(key, path).await?;
        let ids = t.ids.clone();
        let dir = if t.name.is_empty() {
            t.parent
        } else {
            rustix::fs::openat(
                &t.parent,
                t.name.as_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|_| {
                ApiError::invalid(format!("extraction point is not a directory: {path}"))
            })?
        };
        tokio::task::spawn_blocking(move || {
            let _hold = hold;
            let unpack = |owner| {
                berth_image::extract::unpack_owned(tar, dir, false, owner)
                    .map(|_| ())
                    .map_err(|e| ApiError::invalid(crate::error::chain(&e)))
            };
            match ids {
                None => unpack(None),
                // A remapped container: written as its root on the host, with
                // its IDs shifted, which its ID-mapped mounts store as its own.
                Some(m) => {
                    let host = |ranges: &[berth_runtime::spec::IdRange], id| {
                        IdMap::to_host(ranges, id).unwrap_or(65534)
                    };
                    let (uid, gid) = (host(&m.uids, 0), host(&m.gids, 0));
                    let owner: berth_image::extract::Owner =
                        Box::new(move |u, g| (host(&m.uids, u), host(&m.gids, g)));
                    berth_runtime::sys::with_fs_ids(uid, gid, || unpack(Some(owner))).map_err(
                        |e| ApiError::internal(format!("copying into the container: {e}")),
                    )?
                }
            }
        })
        .await
        .map_err(|source| super::Error::Task {
            what: "copy",
            source,
        })?
    }
}

fn stat_of(t: &Target) -> ApiResult<PathStat> {
    let st = if t.name.is_empty() {
        rustix::fs::fstat(&t.parent)
    } else {
        rustix::fs::statat(&t.parent, t.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
    }
    .map_err(|source| super::Error::Stat {
        path: t.shown.clone(),
        source,
    })?;
    let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        rustix::fs::readlinkat(&t.parent, t.name.as_str(), Vec::new())
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(PathStat {
        name: t.shown.clone(),
        size: st.st_size,
        mode: go_mode(&st),
        mtime: mtime(&st),
        link_target,
    })
}
