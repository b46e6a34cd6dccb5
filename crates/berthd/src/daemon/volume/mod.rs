//! Volumes of the local driver: a directory `<data-root>/volumes/<name>/_data` per
//! volume, and its record `volume.json` beside it. A volume created with `--opt
//! type=... device=... o=...` has that filesystem mounted on `_data` while running
//! containers use it. The volumes directory is root's alone (mode 0700), so no host
//! user can reach what containers keep there.

use crate::daemon::time::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use berth_api::{Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolRecord {
    pub name: String,
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made for a container (`-v /path`, an image's VOLUME): `rm -v`, `--rm` and
    /// `volume prune` remove it.
    #[serde(default)]
    pub anonymous: bool,
}

pub struct Volumes {
    dir: PathBuf,
    /// Serialises create/remove/mount decisions.
    lock: Mutex<()>,
    events: std::sync::Arc<crate::daemon::events::Events>,
    users: crate::daemon::users::Users<dyn VolumeUsers>,
    /// Legacy volume plugins (drivers other than `local`).
    plugins: std::sync::Arc<crate::daemon::plugins::Plugins>,
}

/// Docker's rule for volume names.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// A failing step of the volume service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("preparing the volumes directory {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating volume {name}")]
    Create {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("removing volume {name}")]
    Remove {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// Docker's words for a volume whose filesystem does not mount.
    #[error("error while mounting volume '{}': failed to mount local volume: mount {device}:{} (type {fstype}, options {options:?})", data.display(), name)]
    Mount {
        name: String,
        data: PathBuf,
        device: String,
        fstype: String,
        options: String,
        #[source]
        source: rustix::io::Errno,
    },
}

impl Volumes {
    pub fn open(
        data_root: &Path,
        events: std::sync::Arc<crate::daemon::events::Events>,
        plugins: std::sync::Arc<crate::daemon::plugins::Plugins>,
    ) -> ApiResult<Volumes> {
        let dir = data_root.join("volumes");
        let dir_err = |source| Error::Directory {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(dir_err)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(dir_err)?;
        // A crash during create leaves a directory without its record: remove it.
        for e in std::fs::read_dir(&dir).map_err(dir_err)?.flatten() {
            if !e.path().join("volume.json").exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let v = Volumes {
            dir,
            lock: Mutex::new(()),
            events,
            users: Default::default(),
            plugins,
        };
        // The managed plugins serving volumes are in use while those exist.
        for r in v.all() {
            if r.driver != "local" {
                v.plugins.acquire(&r.driver);
            }
        }
        Ok(v)
    }

    /// The volume plugins in use (`docker info`).
    pub fn plugin_names(&self) -> Vec<String> {
        self.plugins.active_volume_drivers()
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Option<VolRecord> {
        if !valid_name(name) {
            return None;
        }
        let b = std::fs::read(self.dir.join(name).join("volume.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }

    pub fn must(&self, name: &str) -> ApiResult<VolRecord> {
        self.get(name)
            .ok_or_else(|| ApiError::not_found(format!("get {name}: no such volume")))
    }

    pub fn all(&self) -> Vec<VolRecord> {
        let mut out: Vec<VolRecord> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Creates a volume, or returns the one of that name (Docker's behaviour).
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> ApiResult<VolRecord> {
        let _g = self.guard();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !valid_name(n) {
                    return Err(ApiError::invalid(format!(
                        "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                    )));
                }
                n.to_string()
            }
            None => crate::daemon::ids::new_id(),
        };
        let driver = if driver.is_empty() { "local" } else { driver };
        if driver != "local" {
            if let Some(existing) = self.get(&name) {
                return Ok(existing);
            }
            // The plugin makes it; berth keeps which driver has it.
            let driver = self.plugins.volume_driver_name(driver)?;
            self.plugins.volume_call(
                &driver,
                "Create",
                &serde_json::json!({ "Name": name, "Opts": options }),
            )?;
            let rec = self.record(name, &driver, options, labels, anonymous)?;
            self.plugins.acquire(&driver);
            return Ok(rec);
        }
        for k in options.keys() {
            if !["type", "device", "o", "size"].contains(&k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "create {name}: invalid option key: {k:?}"
                )));
            }
        }
        if options.contains_key("size") {
            return Err(ApiError::not_implemented(format!(
                "create {name}: the size option needs project quotas, which berth does not support yet"
            )));
        }
        if options.contains_key("device") != options.contains_key("type")
            && !options.contains_key("o")
        {
            return Err(ApiError::invalid(format!(
                "create {name}: the local driver needs both type and device (e.g. --opt type=tmpfs --opt device=tmpfs)"
            )));
        }
        if let Some(existing) = self.get(&name) {
            return Ok(existing);
        }
        self.record(name, driver, options, labels, anonymous)
    }

    /// Writes a new volume's record (and, for the local driver, its data
    /// directory); nothing is left on failure.
    fn record(
        &self,
        name: String,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> ApiResult<VolRecord> {
        let rec = VolRecord {
            name: name.clone(),
            driver: driver.into(),
            created: now_rfc3339(),
            labels,
            options,
            anonymous,
        };
        let vdir = self.dir.join(&name);
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(vdir.join("_data"))?;
            std::fs::set_permissions(vdir.join("_data"), std::fs::Permissions::from_mode(0o755))?;
            let tmp = vdir.join("volume.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&rec).expect("serialises"))?;
            std::fs::rename(&tmp, vdir.join("volume.json"))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&vdir);
            return Err(Error::Create { name, source: e }.into());
        }
        Ok(rec)
    }

    /// Removes a volume (the caller checked that no container uses it).
    pub fn remove(&self, name: &str) -> ApiResult<()> {
        let _g = self.guard();
        let v = self.must(name)?;
        if v.driver != "local" {
            self.plugins
                .volume_call(&v.driver, "Remove", &serde_json::json!({ "Name": name }))?;
        }
        let vdir = self.dir.join(name);
        self.unmount(name);
        // The record goes first: a crash after it leaves only a directory, which the
        // next start removes.
        let remove_err = |source| Error::Remove {
            name: name.to_string(),
            source,
        };
        std::fs::remove_file(vdir.join("volume.json")).map_err(remove_err)?;
        if v.driver != "local" {
            self.plugins.release(&v.driver);
        }
        std::fs::remove_dir_all(&vdir).map_err(remove_err)?;
        Ok(())
    }

    fn mounted(&self, name: &str) -> bool {
        crate::daemon::mountinfo::is_mount_point(&self.data_dir(name))
    }

    /// Where container `container` finds volume `v` on the host: a plugin's
    /// mount point (it mounts it for that container), or the local directory with
    /// its filesystem mounted if it has one; and whether it must be bound without
    /// following links (a managed plugin's).
    pub fn mount_for(&self, v: &VolRecord, container: &str) -> ApiResult<(PathBuf, bool)> {
        if v.driver != "local" {
            let r = self.plugins.volume_call(
                &v.driver,
                "Mount",
                &serde_json::json!({ "Name": v.name, "ID": container }),
            )?;
            let p = r["Mountpoint"].as_str().unwrap_or("");
            if !p.starts_with('/') {
                return Err(ApiError::internal(format!(
                    "volume plugin {} gave no absolute mount point for {}: {p:?}",
                    v.driver, v.name
                )));
            }
            return self.plugins.volume_host_path(&v.driver, p);
        }
        self.mount(v)?;
        Ok((self.data_dir(&v.name), false))
    }

    /// Container `container` no longer uses plugin volume `v`.
    pub fn unmount_for(&self, v: &VolRecord, container: &str) {
        if v.driver == "local" {
            return;
        }
        if let Err(e) = self.plugins.volume_call(
            &v.driver,
            "Unmount",
            &serde_json::json!({ "Name": v.name, "ID": container }),
        ) {
            tracing::warn!(volume = %v.name, driver = %v.driver, error = %e.message, "unmounting a plugin volume");
        }
    }

    /// Mounts a volume's filesystem (`--opt type/device/o`) if it has one and it is
    /// not mounted yet.
    pub fn mount(&self, v: &VolRecord) -> ApiResult<()> {
        let Some(fstype) = v.options.get("type") else {
            return Ok(());
        };
        let _g = self.guard();
        if self.mounted(&v.name) {
            return Ok(());
        }
        let device = v.options.get("device").cloned().unwrap_or_default();
        let mut opts = v.options.get("o").cloned().unwrap_or_default();
        let mut flags = rustix::mount::MountFlags::empty();
        // A bind "volume" (type=none, o=bind): the device is a host directory.
        if fstype == "none" && opts.split(',').any(|o| o == "bind") {
            flags |= rustix::mount::MountFlags::BIND;
            opts = opts
                .split(',')
                .filter(|o| *o != "bind")
                .collect::<Vec<_>>()
                .join(",");
        }
        let data = std::ffi::CString::new(opts.clone()).map_err(|_| {
            ApiError::invalid(format!("volume {}: options contain a NUL byte", v.name))
        })?;
        rustix::mount::mount(
            device.as_str(),
            self.data_dir(&v.name),
            fstype.as_str(),
            flags,
            data.as_c_str(),
        )
        .map_err(|source| {
            Error::Mount {
                name: v.name.clone(),
                data: self.data_dir(&v.name),
                device: device.clone(),
                fstype: fstype.clone(),
                options: opts.clone(),
                source,
            }
            .into()
        })
    }

    /// Unmounts a volume's filesystem (no running container uses it any more).
    pub fn unmount(&self, name: &str) {
        if self.mounted(name) {
            if let Err(e) =
                rustix::mount::unmount(self.data_dir(name), rustix::mount::UnmountFlags::DETACH)
            {
                tracing::warn!(volume = %name, error = %e, "unmounting volume");
            }
        }
    }

    /// A volume as the API shows it.
    pub fn view(&self, v: &VolRecord) -> Volume {
        Volume {
            created_at: v.created.clone(),
            driver: v.driver.clone(),
            labels: v.labels.clone(),
            mountpoint: if v.driver == "local" {
                self.data_dir(&v.name).display().to_string()
            } else {
                self.plugins
                    .volume_call(&v.driver, "Path", &serde_json::json!({ "Name": v.name }))
                    .ok()
                    .and_then(|r| {
                        let p = r["Mountpoint"].as_str()?.to_string();
                        self.plugins
                            .volume_host_path(&v.driver, &p)
                            .ok()
                            .map(|(p, _)| p)
                    })
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            },
            name: v.name.clone(),
            options: (!v.options.is_empty()).then(|| v.options.clone()),
            scope: "local".into(),
            usage_data: None,
        }
    }
}

/// What the volume service asks of whoever mounts volumes.
pub trait VolumeUsers: Send + Sync {
    /// The containers (any state) whose mounts name volume `name`.
    fn volume_users(&self, name: &str) -> Vec<String>;
}

/// The volume API: what a volume is, and who uses it, through [`VolumeUsers`].
impl Volumes {
    /// Wires the container service in (once, at start).
    pub fn set_users(&self, users: std::sync::Weak<dyn VolumeUsers>) {
        self.users.set(users);
    }

    /// A volume event with `attrs` (what containers do with volumes: create,
    /// mount, unmount).
    pub fn announce(&self, action: &str, name: &str, attrs: &[(&str, String)]) {
        let mut a = crate::daemon::events::Attributes::new();
        for (k, v) in attrs {
            a.insert(k.to_string(), v.clone());
        }
        self.events.emit("volume", action, name, a);
    }

    /// The containers using volume `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.users.with(Vec::new(), |u| u.volume_users(name))
    }

    /// `POST /volumes/create`.
    pub fn create_api(&self, req: VolumeCreateOptions) -> ApiResult<Volume> {
        let v = self.create(
            Some(req.name.as_str()).filter(|n| !n.is_empty()),
            &req.driver,
            req.driver_opts.unwrap_or_default(),
            req.labels.unwrap_or_default(),
            false,
        )?;
        let mut attrs = crate::daemon::events::Attributes::new();
        attrs.insert("driver".into(), v.driver.clone());
        self.events.emit("volume", "create", &v.name, attrs);
        Ok(self.view(&v))
    }

    pub fn list(
        &self,
        f: &std::collections::HashMap<String, Vec<String>>,
    ) -> ApiResult<VolumeListResponse> {
        for k in f.keys() {
            if !["name", "driver", "label", "dangling"].contains(&k.as_str()) {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let volumes: Vec<Volume> = self
            .all()
            .iter()
            .filter(|v| {
                let any = |k: &str, ok: &dyn Fn(&str) -> bool| {
                    f.get(k).is_none_or(|l| l.iter().any(|x| ok(x)))
                };
                any("name", &|x| v.name.contains(x))
                    && any("driver", &|x| v.driver == x)
                    && any("dangling", &|x| {
                        (x == "true" || x == "1") == self.users(&v.name).is_empty()
                    })
                    && f.get("label").is_none_or(|l| {
                        l.iter().all(|want| match want.split_once('=') {
                            Some((k, val)) => v.labels.get(k).map(String::as_str) == Some(val),
                            None => v.labels.contains_key(want),
                        })
                    })
            })
            .map(|v| self.view(v))
            .collect();
        Ok(VolumeListResponse {
            volumes,
            warnings: None,
        })
    }

    pub fn inspect(&self, name: &str) -> ApiResult<Volume> {
        Ok(self.view(&self.must(name)?))
    }

    pub fn remove_api(&self, name: &str, force: bool) -> ApiResult<()> {
        if self.get(name).is_none() && force {
            return Ok(());
        }
        self.must(name)?;
        let users = self.users(name);
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.remove(name)?;
        self.events.emit(
            "volume",
            "destroy",
            name,
            crate::daemon::events::Attributes::new(),
        );
        Ok(())
    }

    /// `POST /volumes/prune`: unused anonymous volumes, or every unused one with
    /// the `all` filter (Docker 23's rule).
    pub fn prune(
        &self,
        f: &std::collections::HashMap<String, Vec<String>>,
    ) -> ApiResult<VolumePruneResponse> {
        for k in f.keys() {
            if k != "label" && k != "all" {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let all = f
            .get("all")
            .is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
        let labels = f.get("label").cloned().unwrap_or_default();
        let mut gone = Vec::new();
        let mut reclaimed = 0u64;
        for v in self.all() {
            if (!all && !v.anonymous) || !self.users(&v.name).is_empty() {
                continue;
            }
            let matches = labels.iter().all(|want| match want.split_once('=') {
                Some((k, val)) => v.labels.get(k).map(String::as_str) == Some(val),
                None => v.labels.contains_key(want),
            });
            if !matches {
                continue;
            }
            let size = crate::daemon::paths::dir_size(&self.data_dir(&v.name));
            self.remove(&v.name)?;
            self.events.emit(
                "volume",
                "destroy",
                &v.name,
                crate::daemon::events::Attributes::new(),
            );
            reclaimed += size;
            gone.push(v.name);
        }
        Ok(VolumePruneResponse {
            volumes_deleted: gone,
            space_reclaimed: reclaimed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        assert!(valid_name("data"));
        assert!(valid_name("my-vol_1.x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn create_is_idempotent_and_remove_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::open(
            d.path(),
            Default::default(),
            std::sync::Arc::new(crate::daemon::plugins::Plugins::new(Vec::new(), None)),
        )
        .unwrap();
        let a = v
            .create(Some("data"), "", BTreeMap::new(), BTreeMap::new(), false)
            .unwrap();
        std::fs::write(v.data_dir("data").join("f"), b"x").unwrap();
        let b = v
            .create(
                Some("data"),
                "local",
                BTreeMap::new(),
                BTreeMap::new(),
                false,
            )
            .unwrap();
        assert_eq!(a, b);
        assert!(
            v.data_dir("data").join("f").exists(),
            "an existing volume is kept"
        );
        let anon = v
            .create(None, "", BTreeMap::new(), BTreeMap::new(), true)
            .unwrap();
        assert_eq!(anon.name.len(), 64);
        assert_eq!(v.all().len(), 2);
        let mode = std::fs::metadata(d.path().join("volumes"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        v.remove("data").unwrap();
        assert!(!d.path().join("volumes/data").exists());
        assert_eq!(
            v.remove("data").unwrap_err().kind,
            berth_api::ErrorKind::NotFound
        );
        for bad in ["x", "a/b", "..."] {
            assert!(
                v.create(Some(bad), "", BTreeMap::new(), BTreeMap::new(), false)
                    .is_err(),
                "{bad}"
            );
        }
        let e = v
            .create(
                Some("p"),
                "nfs-plugin",
                BTreeMap::new(),
                BTreeMap::new(),
                false,
            )
            .unwrap_err();
        assert_eq!(
            e.kind,
            berth_api::ErrorKind::InvalidArgument,
            "the name is checked first"
        );
        let e = v
            .create(
                Some("pp"),
                "nfs-plugin",
                BTreeMap::new(),
                BTreeMap::new(),
                false,
            )
            .unwrap_err();
        assert!(e.message.contains("nfs-plugin"));
        let opts = BTreeMap::from([("colour".to_string(), "red".to_string())]);
        assert!(v
            .create(Some("oo"), "", opts, BTreeMap::new(), false)
            .unwrap_err()
            .message
            .contains("colour"));
    }
}
