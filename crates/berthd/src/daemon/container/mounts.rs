//! A container's mounts: `-v`/`Binds`, `--mount`/`Mounts`, `--tmpfs`/`Tmpfs`,
//! `--volumes-from`, and the anonymous volumes of `VOLUME`; decided and checked at
//! create, turned into the runtime's mounts at each start (with the copy-up of a new
//! volume from the image), and shown as `Mounts` by inspect.

use crate::daemon::container::record::MountPoint;
use crate::daemon::container::record::Record;
use crate::daemon::container::Containers;
use crate::error::{ApiError, ApiResult};
use berth_api::Mount;
use berth_runtime::spec::{MountKind, MountSpec};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];

fn check_destination(dst: &str) -> ApiResult<String> {
    if !dst.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "invalid mount config: invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    let clean = Path::new(dst)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect::<PathBuf>();
    if clean
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ApiError::invalid(format!(
            "invalid mount path {dst:?}: .. is not allowed"
        )));
    }
    let s = clean.display().to_string();
    if s == "/" {
        return Err(ApiError::invalid(
            "invalid specification: destination can't be '/'",
        ));
    }
    Ok(s)
}

/// Parses one `-v src:dst[:mode]` of `Binds`.
pub fn parse_bind(spec: &str) -> ApiResult<MountPoint> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => {
            return Err(ApiError::invalid(format!(
                "invalid volume specification: '{spec}'"
            )))
        }
    };
    if src.is_empty() {
        return Err(ApiError::invalid(format!(
            "invalid volume specification: '{spec}'"
        )));
    }
    let mut m = MountPoint {
        destination: check_destination(dst)?,
        rw: true,
        mode: mode.to_string(),
        ..MountPoint::default()
    };
    for o in mode.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.rw = false,
            "rw" => m.rw = true,
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "nocopy" => m.nocopy = true,
            p if PROPAGATIONS.contains(&p) => m.propagation = p.to_string(),
            _ => return Err(ApiError::invalid(format!("invalid mode: {o}"))),
        }
    }
    if src.starts_with('/') {
        m.kind = "bind".into();
        m.source = src.to_string();
        if m.propagation.is_empty() {
            m.propagation = "rprivate".into();
        }
        if m.nocopy {
            return Err(ApiError::invalid(format!(
                "invalid mode: nocopy is for volumes, in '{spec}'"
            )));
        }
    } else {
        if !crate::daemon::volume::valid_name(src) {
            return Err(ApiError::invalid(format!(
                "create {src}: \"{src}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        if !m.propagation.is_empty() {
            return Err(ApiError::invalid(format!(
                "invalid mode: propagation is for bind mounts, in '{spec}'"
            )));
        }
        m.kind = "volume".into();
        m.source = src.to_string();
    }
    Ok(m)
}

/// Docker's `--tmpfs` options: data options pass to the kernel, flags are taken.
pub fn parse_tmpfs(dst: &str, opts: &str) -> ApiResult<MountPoint> {
    let mut m = MountPoint {
        kind: "tmpfs".into(),
        destination: check_destination(dst)?,
        rw: true,
        ..MountPoint::default()
    };
    let mut data = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some((k, v))
                if ["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"].contains(&k) =>
            {
                if k == "size" {
                    berth_api::parse_size(v).ok_or_else(|| {
                        ApiError::invalid(format!("invalid tmpfs size {v:?} for {dst}"))
                    })?;
                }
                if k == "mode" && u32::from_str_radix(v, 8).is_err() {
                    return Err(ApiError::invalid(format!(
                        "invalid tmpfs mode {v:?} for {dst}: octal"
                    )));
                }
                data.push(o.to_string());
            }
            None if o == "exec" => m.tmpfs_exec = true,
            None if o == "noexec" => m.tmpfs_exec = false,
            None if o == "ro" => m.rw = false,
            None if [
                "rw",
                "nosuid",
                "nodev",
                "suid",
                "dev",
                "sync",
                "async",
                "atime",
                "noatime",
                "relatime",
                "strictatime",
            ]
            .contains(&o) => {}
            _ => {
                return Err(ApiError::invalid(format!(
                    "invalid tmpfs option {o:?} for {dst}"
                )))
            }
        }
    }
    m.tmpfs_options = data.join(",");
    Ok(m)
}

/// Parses one entry of `HostConfig.Mounts` (`--mount`).
pub fn parse_mount(v: &Mount) -> ApiResult<MountPoint> {
    let kind = v.kind.clone().unwrap_or_default();
    let target = v.target.clone().unwrap_or_default();
    let src = v.source.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(ApiError::invalid(
            "invalid mount config: Target must not be empty",
        ));
    }
    let mut m = MountPoint {
        destination: check_destination(&target)?,
        rw: !v.read_only.unwrap_or(false),
        kind: kind.clone(),
        ..MountPoint::default()
    };
    let wrong_opts = |o: &str| {
        ApiError::invalid(format!(
            "invalid mount config for type \"{kind}\": {o} options are not allowed"
        ))
    };
    match kind.as_str() {
        "bind" => {
            if src.is_empty() {
                return Err(ApiError::invalid("invalid mount config for type \"bind\": field Source must not be empty"));
            }
            if !src.starts_with('/') {
                return Err(ApiError::invalid(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{src}' mount path must be absolute"
                )));
            }
            if !Path::new(&src).exists() {
                return Err(ApiError::invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                )));
            }
            if v.volume_options.is_some() {
                return Err(wrong_opts("VolumeOptions"));
            }
            let bo = v.bind_options.as_ref();
            let p = bo.and_then(|b| b.propagation.as_deref()).unwrap_or("");
            if !p.is_empty() && !PROPAGATIONS.contains(&p) {
                return Err(ApiError::invalid(format!("invalid propagation mode: {p}")));
            }
            m.propagation = if p.is_empty() { "rprivate".into() } else { p.into() };
            m.nonrecursive = bo.and_then(|b| b.non_recursive).unwrap_or(false);
            m.source = src;
        }
        "volume" => {
            if v.bind_options.is_some() {
                return Err(wrong_opts("BindOptions"));
            }
            if !src.is_empty() && !crate::daemon::volume::valid_name(&src) {
                return Err(ApiError::invalid(format!("invalid mount config for type \"volume\": invalid volume name {src:?}")));
            }
            let vo = v.volume_options.as_ref();
            m.nocopy = vo.and_then(|o| o.no_copy).unwrap_or(false);
            // The driver, its options and the labels of a volume the run makes.
            let dc = vo.and_then(|o| o.driver_config.as_ref());
            m.driver = dc.and_then(|d| d.name.clone()).unwrap_or_default();
            m.driver_opts = dc.and_then(|d| d.options.clone()).unwrap_or_default();
            m.labels = vo.and_then(|o| o.labels.clone()).unwrap_or_default();
            m.subpath = vo.and_then(|o| o.subpath.clone()).unwrap_or_default();
            if !m.subpath.is_empty()
                && Path::new(&m.subpath)
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
            {
                return Err(ApiError::invalid(format!(
                    "invalid mount config for type \"volume\": subpath must be a relative path within the volume: {:?}",
                    m.subpath
                )));
            }
            m.anonymous = src.is_empty();
            m.source = src;
        }
        "tmpfs" => {
            if !src.is_empty() {
                return Err(ApiError::invalid("invalid mount config for type \"tmpfs\": field Source must be empty"));
            }
            let to = v.tmpfs_options.as_ref();
            let mut opts = Vec::new();
            if let Some(size) = to.and_then(|o| o.size_bytes).filter(|s| *s > 0) {
                opts.push(format!("size={size}"));
            }
            if let Some(mode) = to.and_then(|o| o.mode).filter(|m| *m > 0) {
                opts.push(format!("mode={mode:o}"));
            }
            let mut t = parse_tmpfs(&target, &opts.join(","))?;
            t.rw = m.rw;
            return Ok(t);
        }
        "" => return Err(ApiError::invalid("invalid mount config: mount type unknown")),
        other => {
            return Err(ApiError::invalid(format!(
                "invalid mount config: mount type {other:?} is not supported: use bind, volume or tmpfs"
            )))
        }
    }
    Ok(m)
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

impl Containers {
    /// Decides a new container's mounts: checks every one, makes the named volumes
    /// that do not exist yet and the anonymous ones. Returns the mounts and the
    /// volumes it made (removed again by the caller if the create fails).
    pub(super) fn plan_mounts(
        &self,
        config: &berth_api::ContainerConfig,
        hc: &berth_api::HostConfig,
    ) -> ApiResult<(Vec<MountPoint>, Vec<String>)> {
        let mut explicit: Vec<MountPoint> = Vec::new();
        for b in str_list(hc.other.get("Binds")) {
            explicit.push(parse_bind(&b)?);
        }
        let mounts = hc
            .mounts()
            .map_err(|e| ApiError::invalid(format!("invalid mount config: {e}")))?;
        for m in &mounts {
            explicit.push(parse_mount(m)?);
        }
        if let Some(map) = hc.other.get("Tmpfs").and_then(Value::as_object) {
            for (dst, opts) in map {
                explicit.push(parse_tmpfs(dst, opts.as_str().unwrap_or(""))?);
            }
        }
        for (i, m) in explicit.iter().enumerate() {
            if explicit[..i].iter().any(|o| o.destination == m.destination) {
                return Err(ApiError::invalid(format!(
                    "Duplicate mount point: {}",
                    m.destination
                )));
            }
        }
        let mut all = explicit;
        // --volumes-from: the other container's volumes and binds, unless given here.
        for vf in str_list(hc.other.get("VolumesFrom")) {
            let (name, mode) = vf.split_once(':').unwrap_or((&vf, ""));
            if !["", "ro", "rw"].contains(&mode) {
                return Err(ApiError::invalid(format!(
                    "invalid mode for volumes-from: {vf}"
                )));
            }
            let other = self
                .get(name)
                .map_err(|_| ApiError::not_found(format!("No such container: {name}")))?;
            for m in other.rec().mounts.iter().filter(|m| m.kind != "tmpfs") {
                if all.iter().any(|o| o.destination == m.destination) {
                    continue;
                }
                let mut m = m.clone();
                m.anonymous = false;
                match mode {
                    "ro" => m.rw = false,
                    "rw" => m.rw = true,
                    _ => {}
                }
                all.push(m);
            }
        }
        // VOLUME (the image's and -v /path): anonymous volumes where nothing else is.
        for dst in config.volumes.clone().unwrap_or_default().keys() {
            let dst = check_destination(dst)?;
            if all.iter().any(|o| o.destination == dst) {
                continue;
            }
            all.push(MountPoint {
                kind: "volume".into(),
                destination: dst,
                rw: true,
                anonymous: true,
                ..MountPoint::default()
            });
        }
        // Create what is missing; bind sources of -v are made as directories.
        let mut made = Vec::new();
        let result = (|| -> ApiResult<()> {
            for m in all.iter_mut() {
                match m.kind.as_str() {
                    "volume" if m.source.is_empty() => {
                        let v = self.volumes.create(
                            None,
                            &m.driver,
                            m.driver_opts.clone(),
                            m.labels.clone(),
                            true,
                        )?;
                        self.volumes
                            .announce("create", &v.name, &[("driver", v.driver.clone())]);
                        made.push(v.name.clone());
                        m.source = v.name;
                        m.anonymous = true;
                    }
                    "volume" if self.volumes.get(&m.source).is_none() => {
                        // `--mount volume-driver=`, else `--volume-driver`: who
                        // makes the named volumes a run makes.
                        let driver = match m.driver.as_str() {
                            "" => hc
                                .other
                                .get("VolumeDriver")
                                .and_then(|v| v.as_str())
                                .unwrap_or(""),
                            d => d,
                        };
                        let v = self.volumes.create(
                            Some(&m.source),
                            driver,
                            m.driver_opts.clone(),
                            m.labels.clone(),
                            false,
                        )?;
                        self.volumes
                            .announce("create", &v.name, &[("driver", v.driver.clone())]);
                        made.push(v.name);
                    }
                    "bind" if !Path::new(&m.source).exists() => {
                        std::fs::create_dir_all(&m.source).map_err(|e| {
                            ApiError::invalid(format!(
                                "error while creating mount source path '{}': {e}",
                                m.source
                            ))
                        })?;
                    }
                    _ => {}
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            for v in &made {
                let _ = self.volumes.remove(v);
            }
            return Err(e);
        }
        Ok((all, made))
    }

    /// The runtime's mounts for a start, parents before children. Volumes with a
    /// filesystem of their own are mounted; a new, empty volume gets the image's
    /// content at its path (unless `nocopy`).
    pub(super) fn mount_specs(&self, r: &Record, lower: &[PathBuf]) -> ApiResult<Vec<MountSpec>> {
        let mut mounts = r.mounts.clone();
        mounts.sort_by_key(|m| Path::new(&m.destination).components().count());
        let mut out = Vec::new();
        for m in &mounts {
            let kind = match m.kind.as_str() {
                "tmpfs" => MountKind::Tmpfs {
                    options: m.tmpfs_options.clone(),
                    exec: m.tmpfs_exec,
                },
                "volume" => {
                    let v = self.volumes.get(&m.source).ok_or_else(|| {
                        ApiError::not_found(format!(
                            "error while mounting volume '{}': no such volume",
                            m.source
                        ))
                    })?;
                    let (data, nofollow) = self.volumes.mount_for(&v, &r.id)?;
                    self.volumes.announce(
                        "mount",
                        &v.name,
                        &[
                            ("container", r.id.clone()),
                            ("destination", m.destination.clone()),
                            ("driver", v.driver.clone()),
                            ("propagation", m.propagation.clone()),
                            ("read/write", m.rw.to_string()),
                        ],
                    );
                    let remap = self
                        .remapped(&r.host_config)
                        .filter(|_| v.driver == "local");
                    if !m.nocopy && m.subpath.is_empty() && is_empty_dir(&data) {
                        let upper = self.paths.writable(&r.id);
                        let t = std::time::Instant::now();
                        // A remapped container's copy is owned by its host IDs.
                        let shift = |u, g| remap.map_or((u, g), |map| host_ids(map, u, g));
                        self.copy_up(lower, &upper, &m.destination, &data, &shift)?;
                        tracing::debug!(container = %r.id, volume = %v.name, elapsed_us = t.elapsed().as_micros() as u64, "copied the image's content into the volume");
                    }
                    // A remapped container's volume is its root's on the host, as
                    // dockerd has it: what the container writes there is owned by
                    // its host IDs.
                    if let Some(map) = remap {
                        own_volume_root(&data, map).map_err(|source| {
                            super::Error::VolumeOwner {
                                path: m.destination.clone(),
                                source,
                            }
                        })?;
                    }
                    let (source, nofollow) = if m.subpath.is_empty() {
                        (data, nofollow)
                    } else {
                        // A directory of the volume, which containers sharing it
                        // write: beneath it, through no link, bound from a
                        // descriptor resolved the same way.
                        (volume_subpath(&data, &m.subpath)?, true)
                    };
                    MountKind::Bind {
                        source,
                        file: false,
                        propagation: None,
                        nonrecursive: false,
                        idmap: false,
                        nofollow,
                    }
                }
                _ => {
                    let meta = std::fs::metadata(&m.source).map_err(|e| {
                        ApiError::invalid(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {} ({e})",
                            m.source
                        ))
                    })?;
                    check_propagation(&m.source, &m.propagation)?;
                    MountKind::Bind {
                        source: PathBuf::from(&m.source),
                        file: !meta.is_dir(),
                        propagation: Some(if m.propagation.is_empty() {
                            "rprivate".into()
                        } else {
                            m.propagation.clone()
                        }),
                        nonrecursive: m.nonrecursive,
                        // A build step's own mounts (its cache, its secrets, other
                        // stages) are berth's, in the container's IDs like its
                        // layers: seen through a remapped step's mapping.
                        idmap: self.remapped(&r.host_config).is_some()
                            && Path::new(&m.source).starts_with(self.paths.data_root.join("build")),
                        nofollow: false,
                    }
                }
            };
            out.push(MountSpec {
                destination: m.destination.clone(),
                kind,
                readonly: !m.rw,
            });
        }
        Ok(out)
    }

    /// Copies the image's content at `path` (with the container's own changes
    /// over it) into the new volume `data`, reading the layers' directories
    /// directly (their merged view, as overlayfs would show it), so that files are
    /// copied in the kernel from disk to disk.
    fn copy_up(
        &self,
        lower: &[PathBuf],
        upper: &Path,
        path: &str,
        data: &Path,
        owner: crate::daemon::image::layers::Owner<'_>,
    ) -> ApiResult<()> {
        let mut layers: Vec<PathBuf> = Vec::new();
        if upper.is_dir() {
            layers.push(upper.to_path_buf());
        }
        // With vfs the container's copy is the whole tree.
        if self.paths.driver == crate::daemon::paths::Driver::Overlay2 {
            layers.extend(lower.iter().cloned());
        }
        let rel = Path::new(path.trim_start_matches('/'));
        crate::daemon::image::layers::copy_merged_owned(&layers, rel, data, owner).map_err(
            |source| {
                super::Error::CopyUp {
                    path: path.to_string(),
                    source,
                }
                .into()
            },
        )
    }

    /// `--storage-opt`: `size` is the only option, and needs project quotas on the
    /// data root's filesystem (xfs `pquota`, ext4 `prjquota`), which berth does not
    /// drive yet; everything is refused with Docker's words rather than ignored.
    pub(super) fn check_storage_opts(&self, hc: &berth_api::HostConfig) -> ApiResult<()> {
        let Some(opts) = hc.other.get("StorageOpt").and_then(Value::as_object) else {
            return Ok(());
        };
        for (k, v) in opts {
            if k != "size" {
                return Err(ApiError::invalid(format!("Unknown option {k}")));
            }
            let v = v.as_str().unwrap_or("");
            berth_api::parse_size(v).ok_or_else(|| {
                ApiError::invalid(format!("invalid size {v:?} for --storage-opt size"))
            })?;
        }
        if opts.is_empty() {
            return Ok(());
        }
        if project_quotas(&self.paths.data_root) {
            return Err(ApiError::not_implemented(
                "--storage-opt size: the data root has project quotas, but berth does not set them yet",
            ));
        }
        Err(ApiError::invalid(format!(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option (the data root {} has no project quotas)",
            self.paths.data_root.display()
        )))
    }

    /// The volumes of containers (any state) that use volume `name`.
    pub(super) fn volume_users(&self, name: &str) -> Vec<String> {
        self.all()
            .iter()
            .filter(|c| {
                c.rec()
                    .mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.source == name)
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// After an exit: volume filesystems no running container uses are unmounted.
    pub(super) fn release_volumes(&self, r: &Record) {
        for m in r.mounts.iter().filter(|m| m.kind == "volume") {
            if let Some(v) = self.volumes.get(&m.source) {
                self.volumes.unmount_for(&v, &r.id);
            }
            self.volumes.announce(
                "unmount",
                &m.source,
                &[("container", r.id.clone()), ("driver", "local".to_string())],
            );
        }
        // Only volumes with a filesystem of their own are ever mounted on the host.
        let mounted = |name: &str| {
            self.volumes
                .get(name)
                .is_some_and(|v| v.options.contains_key("type"))
        };
        for m in r
            .mounts
            .iter()
            .filter(|m| m.kind == "volume" && mounted(&m.source))
        {
            let in_use = self.all().iter().any(|c| {
                c.id != r.id
                    && c.is_running()
                    && c.rec()
                        .mounts
                        .iter()
                        .any(|o| o.kind == "volume" && o.source == m.source)
            });
            if !in_use {
                self.volumes.unmount(&m.source);
            }
        }
    }

    /// Removes the anonymous volumes of a removed container (`rm -v`, `--rm`).
    pub(super) fn remove_anonymous_volumes(&self, r: &Record) {
        for m in r
            .mounts
            .iter()
            .filter(|m| m.kind == "volume" && m.anonymous)
        {
            if self.volume_users(&m.source).iter().all(|id| id == &r.id) {
                if let Err(e) = self.volumes.remove(&m.source) {
                    tracing::warn!(volume = %m.source, error = %e, "removing an anonymous volume");
                }
            }
        }
    }

    /// `Mounts` of container inspect.
    pub(super) fn mounts_json(&self, r: &Record) -> Vec<Value> {
        r.mounts
            .iter()
            .map(|m| match m.kind.as_str() {
                "volume" => json!({
                    "Type": "volume", "Name": m.source, "Source": self.volumes.data_dir(&m.source),
                    "Destination": m.destination, "Driver": "local", "Mode": m.mode, "RW": m.rw, "Propagation": "",
                }),
                "tmpfs" => json!({
                    "Type": "tmpfs", "Source": "", "Destination": m.destination, "Mode": m.tmpfs_options,
                    "RW": m.rw, "Propagation": "",
                }),
                _ => json!({
                    "Type": "bind", "Source": m.source, "Destination": m.destination, "Mode": m.mode,
                    "RW": m.rw, "Propagation": m.propagation,
                }),
            })
            .collect()
    }
}

/// `--mount volume-subpath=`: `sub` of the volume at `data`, which must exist
/// beneath it and be reached through no symbolic link; returned without links
/// in its path.
fn volume_subpath(data: &Path, sub: &str) -> ApiResult<PathBuf> {
    let full = data.join(sub);
    let fail = |e: String| ApiError::invalid(format!("cannot access path {}: {e}", full.display()));
    let base = std::fs::canonicalize(data).map_err(|e| fail(e.to_string()))?;
    let dir = rustix::fs::open(
        &base,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| fail(e.to_string()))?;
    rustix::fs::openat2(
        &dir,
        sub,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
            fail("it goes through a symbolic link".into())
        }
        e => fail(std::io::Error::from(e).to_string()),
    })?;
    Ok(base.join(sub))
}

/// Whether the filesystem holding `p` is mounted with project quotas.
pub fn project_quotas(p: &Path) -> bool {
    project_quotas_in(&crate::daemon::mountinfo::mounts(), p)
}

fn project_quotas_in(mounts: &[crate::daemon::mountinfo::Mount], p: &Path) -> bool {
    crate::daemon::mountinfo::holding(mounts, p).is_some_and(|m| {
        m.super_options
            .split(',')
            .any(|o| ["prjquota", "pquota", "pqnoenforce"].contains(&o))
    })
}

/// A bind whose propagation crosses to the host needs a source on a mount
/// that propagates (moby's ensureShared / ensureSharedOrSlave).
fn check_propagation(source: &str, propagation: &str) -> ApiResult<()> {
    let (need_shared, words) = match propagation {
        "shared" | "rshared" => (true, "a shared mount"),
        "slave" | "rslave" => (false, "a shared or slave mount"),
        _ => return Ok(()),
    };
    let path = std::fs::canonicalize(source)
        .map_err(|e| ApiError::invalid(format!("linux mounts: {source}: {e}")))?;
    let mounts = crate::daemon::mountinfo::mounts();
    let m = crate::daemon::mountinfo::holding(&mounts, &path).ok_or_else(|| {
        ApiError::internal(format!("linux mounts: Can't find mount point of {source}"))
    })?;
    let ok = m.shared() || (!need_shared && m.slave());
    if !ok {
        return Err(ApiError::internal(format!(
            "linux mounts: path {source} is mounted on {} but it is not {words}",
            m.mount_point.display()
        )));
    }
    Ok(())
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// The host IDs of a remapped container's `(uid, gid)`; unmapped ones stay.
fn host_ids(map: &berth_runtime::spec::IdMap, uid: u32, gid: u32) -> (u32, u32) {
    use berth_runtime::spec::IdMap;
    (
        IdMap::to_host(&map.uids, uid).unwrap_or(uid),
        IdMap::to_host(&map.gids, gid).unwrap_or(gid),
    )
}

/// A volume's directory still owned by the host's root (new, or used so far
/// without remapping) becomes the remapped root's.
fn own_volume_root(dir: &Path, map: &berth_runtime::spec::IdMap) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    if (meta.uid(), meta.gid()) == (0, 0) {
        let (u, g) = host_ids(map, 0, 0);
        std::os::unix::fs::chown(dir, Some(u), Some(g))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_quotas_come_from_the_mount_holding_the_path() {
        let mi = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                  40 27 7:0 / /srv/xfs rw,relatime - xfs /dev/loop0 rw,attr2,inode64,prjquota\n";
        let mi = crate::daemon::mountinfo::parse(mi);
        assert!(project_quotas_in(&mi, Path::new("/srv/xfs/berth")));
        assert!(!project_quotas_in(&mi, Path::new("/var/lib/berth")));
        assert!(!project_quotas_in(&mi, Path::new("/srv/xfsother")));
    }

    #[test]
    fn binds_parse_like_docker() {
        let m = parse_bind("/srv/data:/data:ro,rshared").unwrap();
        assert_eq!(
            (
                m.kind.as_str(),
                m.source.as_str(),
                m.destination.as_str(),
                m.rw
            ),
            ("bind", "/srv/data", "/data", false)
        );
        assert_eq!(m.propagation, "rshared");
        let v = parse_bind("cache:/var/cache:nocopy").unwrap();
        assert_eq!((v.kind.as_str(), v.nocopy, v.rw), ("volume", true, true));
        assert_eq!(parse_bind("/a:/b").unwrap().propagation, "rprivate");
        for bad in [
            "/a",
            "/a:b",
            "/a:/",
            "/a:/b:rx",
            "x:/b",
            ":/b",
            "/a:/b/../c",
            "v1:/d:rshared",
            "/a:/b:nocopy",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
    }

    fn mnt(v: serde_json::Value) -> Mount {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tmpfs_and_mount_entries() {
        let t = parse_tmpfs("/run", "size=1m,mode=1777,exec").unwrap();
        assert_eq!(t.tmpfs_options, "size=1m,mode=1777");
        assert!(t.tmpfs_exec);
        assert!(parse_tmpfs("/run", "size=lots").is_err());
        assert!(parse_tmpfs("/run", "mode=999").is_err());
        assert!(parse_tmpfs("/run", "colour=red").is_err());
        let m = parse_mount(&mnt(json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}}))).unwrap();
        assert_eq!(m.tmpfs_options, "size=1048576,mode=700");
        let e = parse_mount(&mnt(
            json!({"Type": "bind", "Source": "/no/such/dir/here", "Target": "/x"}),
        ))
        .unwrap_err();
        assert!(
            e.message
                .contains("bind source path does not exist: /no/such/dir/here"),
            "{e}"
        );
        let v = parse_mount(&mnt(
            json!({"Type": "volume", "Target": "/v", "VolumeOptions": {"NoCopy": true}}),
        ))
        .unwrap();
        assert!(v.anonymous && v.nocopy);
        assert!(parse_mount(&mnt(json!({"Type": "npipe", "Target": "/x"}))).is_err());
        let v = parse_mount(&mnt(json!({"Type": "volume", "Source": "data", "Target": "/v", "VolumeOptions": {"DriverConfig": {"Name": "nfs", "Options": {"o": "1"}}, "Labels": {"a": "b"}}}))).unwrap();
        assert_eq!(v.driver, "nfs");
        assert_eq!(v.driver_opts.get("o").map(String::as_str), Some("1"));
        assert_eq!(v.labels.get("a").map(String::as_str), Some("b"));
        let e = parse_mount(&mnt(
            json!({"Type": "volume", "Source": "data", "Target": "/v", "VolumeOptions": {"Subpath": "../x"}}),
        ))
        .unwrap_err();
        assert!(e.message.contains("subpath must be a relative path"), "{e}");
        assert!(parse_mount(&mnt(
            json!({"Type": "tmpfs", "Source": "x", "Target": "/x"})
        ))
        .is_err());
        assert!(parse_mount(&mnt(
            json!({"Type": "volume", "Target": "/x", "BindOptions": {"Propagation": "shared"}})
        ))
        .is_err());
    }
}
