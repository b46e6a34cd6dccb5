//! Docker's managed plugins: a plugin is an image whose config is the plugin's
//! own (`application/vnd.docker.plugin.v1+json`), installed from a registry or
//! created from a directory, and run by berth as a container of its own when
//! enabled, with its socket in a directory bound at /run/docker/plugins inside.
//!
//! On disk, each plugin is `<data-root>/plugins/<id>/`: `plugin.json` (Docker's
//! `Plugin` object and the digests of its blobs), `rootfs/` (its unpacked layers,
//! the plugin's root, written in place as dockerd does), `blobs/` (the config and
//! the compressed layers, for `docker plugin push`) and `propagated-mount/`. A
//! running plugin's shim lives in `<exec-root>/p/<short id>/`, with the plugin's
//! socket directory `<short id>.s/` beside it (short, so that socket paths fit
//! sun_path).
//!
//! Every change (install, enable, disable, set, upgrade, remove) holds one lock,
//! so they happen one at a time; lookups by name or ID never wait for them.

pub mod config;
mod dist;
mod propagation;
mod record;
mod run;

use crate::daemon::events::Events;
use crate::daemon::image::pull::Puller;
use crate::error::{ApiError, ApiResult};
use config::Config;
pub use record::PluginObj;
use record::{Plugin, Record};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A plugin that serves a capability: where to call it and how its paths map
/// to the host.
pub struct Serving {
    pub name: String,
    pub socket: PathBuf,
    rootfs: PathBuf,
    propagated: Option<(String, PathBuf)>,
}

impl Serving {
    /// A path the plugin answered (a volume's mount point, inside the plugin) as
    /// the host sees it: below its propagated mount, or below its root. The
    /// plugin writes those directories itself, so the path must stay beneath
    /// them without `..` and without passing through a symbolic link (the
    /// bind of it is then made without following any, see
    /// [`berth_runtime::spec::MountKind::Bind`]'s `nofollow`).
    pub fn host_path(&self, inside: &str) -> ApiResult<PathBuf> {
        let refuse = |why: &str| {
            ApiError::internal(format!(
                "volume plugin {} answered the mount point {inside:?}, which {why}",
                self.name
            ))
        };
        let (base, rel) = match &self.propagated {
            Some((dest, host))
                if inside
                    .strip_prefix(dest.as_str())
                    .is_some_and(|r| r.is_empty() || r.starts_with('/')) =>
            {
                (host, &inside[dest.len()..])
            }
            _ => (&self.rootfs, inside),
        };
        let rel = rel.trim_start_matches('/');
        if Path::new(rel)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(refuse("climbs out of the plugin's directories"));
        }
        // berth's own directory, without the links its path may have.
        let base = std::fs::canonicalize(base).map_err(|e| refuse(&e.to_string()))?;
        if !rel.is_empty() {
            let dir = rustix::fs::open(
                &base,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| refuse(&e.to_string()))?;
            rustix::fs::openat2(
                &dir,
                rel,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
                rustix::fs::ResolveFlags::BENEATH | rustix::fs::ResolveFlags::NO_SYMLINKS,
            )
            .map_err(|e| match e {
                rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
                    refuse("goes through a symbolic link")
                }
                e => refuse(&format!("cannot be opened: {e}")),
            })?;
        }
        Ok(base.join(rel))
    }
}

/// What the manager needs from the rest of berthd.
pub struct Setup {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub shim_memfd: Arc<std::os::fd::OwnedFd>,
    /// Where plugins' cgroups go; None: no cgroups (a rootless berthd without
    /// a delegated subtree).
    pub cgroup_parent: Option<String>,
    /// A rootless berthd's delegated subtree (see `CgroupSpec::delegated`).
    pub delegated: bool,
    pub security: crate::daemon::container::security::DaemonSecurity,
    pub puller: Arc<Puller>,
    pub events: Arc<Events>,
}

pub struct Managed {
    root: PathBuf,
    run_root: PathBuf,
    shim_memfd: Arc<std::os::fd::OwnedFd>,
    cgroup_parent: Option<String>,
    delegated: bool,
    filters: crate::daemon::container::security::Filters,
    puller: Arc<Puller>,
    events: Arc<Events>,
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    ops: tokio::sync::Mutex<()>,
    shutting_down: AtomicBool,
}

fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A plugin name in Docker's familiar form with its tag: `vieux/sshfs:latest`.
pub fn familiar(name: &str) -> ApiResult<String> {
    let r = berth_image::reference::Reference::parse(name)
        .map_err(|e| ApiError::invalid(format!("invalid reference format: {name:?}: {e}")))?;
    if r.digest.is_some() {
        return Err(ApiError::invalid("canonical references are not permitted"));
    }
    Ok(r.tagged().unwrap_or_else(|| format!("{}:latest", r.repo)))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("plugin {name:?} not found"))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> ApiError {
    ApiError::internal(format!("{what} {}: {e}", path.display()))
}

impl Managed {
    /// Loads the installed plugins; [`Managed::restore`] starts the enabled ones.
    pub fn open(s: Setup) -> ApiResult<Arc<Managed>> {
        let root = s.data_root.join("plugins");
        std::fs::create_dir_all(&root).map_err(|e| io_err("creating", &root, e))?;
        std::fs::set_permissions(
            &root,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )
        .map_err(|e| io_err("securing", &root, e))?;
        // Half-made plugins of an earlier run (a pull or create cut short).
        let _ = std::fs::remove_dir_all(root.join("tmp"));
        let mut plugins = HashMap::new();
        for e in std::fs::read_dir(&root)
            .map_err(|e| io_err("reading", &root, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with("-removing") {
                let _ = std::fs::remove_dir_all(e.path());
                continue;
            }
            if !is_full_id(&name) {
                continue;
            }
            let rec: Record = match std::fs::read(e.path().join("plugin.json"))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!(plugin = %name, error = %err, "skipping a plugin without a readable record");
                    continue;
                }
            };
            plugins.insert(
                name.clone(),
                Arc::new(Plugin {
                    id: name,
                    rec: Mutex::new(rec),
                    refs: AtomicUsize::new(0),
                    running: Mutex::new(None),
                }),
            );
        }
        Ok(Arc::new(Managed {
            root,
            run_root: s.exec_root.join("p"),
            shim_memfd: s.shim_memfd,
            cgroup_parent: s.cgroup_parent,
            delegated: s.delegated,
            filters: crate::daemon::container::security::Filters::new(s.security),
            puller: s.puller,
            events: s.events,
            plugins: Mutex::new(plugins),
            ops: tokio::sync::Mutex::new(()),
            shutting_down: AtomicBool::new(false),
        }))
    }

    fn all(&self) -> Vec<Arc<Plugin>> {
        let mut v: Vec<_> = self
            .plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|p| p.name());
        v
    }

    /// A plugin by ID, name (`name`, `name:tag`) or unique ID prefix; None when
    /// there is none.
    fn lookup(&self, key: &str) -> ApiResult<Option<Arc<Plugin>>> {
        let map = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
        if is_full_id(key) {
            return Ok(map.get(key).cloned());
        }
        if let Ok(name) = familiar(key) {
            if let Some(p) = map.values().find(|p| p.rec().plugin.name == name) {
                return Ok(Some(p.clone()));
            }
        }
        if key.is_empty() {
            return Ok(None);
        }
        let mut found = map.values().filter(|p| p.id.starts_with(key));
        match (found.next(), found.next()) {
            (Some(p), None) => Ok(Some(p.clone())),
            (Some(_), Some(_)) => Err(ApiError::invalid(format!(
                "multiple plugins found for {key:?}"
            ))),
            _ => Ok(None),
        }
    }

    fn get(&self, key: &str) -> ApiResult<Arc<Plugin>> {
        self.lookup(key)?.ok_or_else(|| not_found(key))
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn save(&self, p: &Plugin) -> ApiResult<()> {
        let dir = self.dir(&p.id);
        let tmp = dir.join("plugin.json.tmp");
        let data = serde_json::to_vec_pretty(&*p.rec()).expect("serialises");
        std::fs::write(&tmp, data)
            .and_then(|_| std::fs::rename(&tmp, dir.join("plugin.json")))
            .map_err(|e| io_err("saving", &dir, e))
    }

    fn emit(&self, action: &str, id: &str, name: &str) {
        let mut a = crate::daemon::events::Attributes::new();
        a.insert("name".into(), name.into());
        self.events.emit("plugin", action, id, a);
    }

    /// `GET /plugins`, with Docker's filters `enabled` and `capability`.
    pub fn list(&self, filters: &HashMap<String, Vec<String>>) -> ApiResult<Vec<PluginObj>> {
        for k in filters.keys() {
            if k != "enabled" && k != "capability" {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let enabled = match filters.get("enabled").and_then(|v| v.first()) {
            None => None,
            Some(v) => Some(
                v.parse::<bool>()
                    .map_err(|_| ApiError::invalid(format!("invalid filter 'enabled={v}'")))?,
            ),
        };
        let caps = filters.get("capability");
        Ok(self
            .all()
            .iter()
            .map(|p| p.obj())
            .filter(|o| enabled.is_none_or(|e| o.enabled == e))
            .filter(|o| {
                caps.is_none_or(|want| {
                    o.config
                        .capabilities()
                        .all(|c| want.iter().any(|w| w.eq_ignore_ascii_case(c)))
                })
            })
            .collect())
    }

    pub fn inspect(&self, key: &str) -> ApiResult<PluginObj> {
        Ok(self.get(key)?.obj())
    }

    /// The plugin `name` serving `capability` (`volumedriver`, `authz`), if a
    /// managed plugin has that name: it must be enabled and provide it.
    pub fn serving(&self, name: &str, capability: &str) -> ApiResult<Option<Serving>> {
        let Some(p) = self.lookup(name)? else {
            return Ok(None);
        };
        let rec = p.rec();
        let o = &rec.plugin;
        if !o.enabled {
            return Err(ApiError::conflict(format!(
                "plugin {} found but disabled",
                o.name
            )));
        }
        if !o.config.provides(capability) {
            return Err(ApiError::invalid(format!(
                "plugin does not provide {:?} capability",
                capability.to_ascii_lowercase()
            )));
        }
        let dir = self.dir(&p.id);
        Ok(Some(Serving {
            name: o.name.clone(),
            socket: self.socket_dir(&p.id).join(&o.config.interface.socket),
            rootfs: dir.join("rootfs"),
            propagated: (!o.config.propagated_mount.is_empty()).then(|| {
                (
                    o.config.propagated_mount.clone(),
                    dir.join("propagated-mount"),
                )
            }),
        }))
    }

    /// The enabled plugins providing `capability`, by name.
    pub fn enabled_with(&self, capability: &str) -> Vec<String> {
        self.all()
            .iter()
            .map(|p| p.obj())
            .filter(|o| o.enabled && o.config.provides(capability))
            .map(|o| o.name)
            .collect()
    }

    /// Something relies on plugin `name` (a volume it serves): count it.
    pub fn acquire(&self, name: &str) {
        if let Ok(Some(p)) = self.lookup(name) {
            p.refs.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn release(&self, name: &str) {
        if let Ok(Some(p)) = self.lookup(name) {
            let _ = p
                .refs
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }

    /// `POST /plugins/{name}/set`: only while disabled.
    pub async fn set(&self, key: &str, args: &[String]) -> ApiResult<()> {
        let _op = self.ops.lock().await;
        let p = self.get(key)?;
        {
            let mut rec = p.rec();
            if rec.plugin.enabled {
                return Err(ApiError::conflict(
                    "cannot set on an active plugin, disable plugin before setting",
                ));
            }
            let config = rec.plugin.config.clone();
            rec.plugin
                .settings
                .apply(&config, args)
                .map_err(ApiError::invalid)?;
        }
        self.save(&p)
    }

    /// `POST /plugins/{name}/enable`.
    pub async fn enable(self: &Arc<Self>, key: &str) -> ApiResult<()> {
        let _op = self.ops.lock().await;
        let p = self.get(key)?;
        if p.rec().plugin.enabled {
            return Err(ApiError::conflict(format!(
                "plugin {} is already enabled",
                p.name()
            )));
        }
        self.start(&p).await?;
        p.rec().plugin.enabled = true;
        if let Err(e) = self.save(&p) {
            p.rec().plugin.enabled = false;
            self.stop(&p).await;
            return Err(e);
        }
        self.emit("enable", &p.id, key);
        Ok(())
    }

    /// `POST /plugins/{name}/disable`.
    pub async fn disable(&self, key: &str, force: bool) -> ApiResult<()> {
        let _op = self.ops.lock().await;
        let p = self.get(key)?;
        let name = p.name();
        if !force && p.refs.load(Ordering::SeqCst) > 0 {
            return Err(ApiError::conflict(format!("plugin {name} is in use")));
        }
        if !p.rec().plugin.enabled {
            return Err(ApiError::conflict(format!(
                "plugin {name} is already disabled"
            )));
        }
        // Disabled first: the exit that follows is not one to restart after.
        p.rec().plugin.enabled = false;
        self.stop(&p).await;
        self.save(&p)?;
        self.emit("disable", &p.id, key);
        Ok(())
    }

    /// `DELETE /plugins/{name}`.
    pub async fn remove(&self, key: &str, force: bool) -> ApiResult<()> {
        let _op = self.ops.lock().await;
        let p = self.get(key)?;
        let name = p.name();
        if !force {
            if p.refs.load(Ordering::SeqCst) > 0 {
                return Err(ApiError::conflict(format!("plugin {name} is in use")));
            }
            if p.rec().plugin.enabled {
                return Err(ApiError::conflict(format!("plugin {name} is enabled")));
            }
        }
        p.rec().plugin.enabled = false;
        self.stop(&p).await;
        let dir = self.dir(&p.id);
        propagation::unshare(&dir.join("propagated-mount"));
        let gone = dir.with_file_name(format!("{}-removing", p.id));
        std::fs::rename(&dir, &gone).map_err(|e| io_err("removing", &dir, e))?;
        self.plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&p.id);
        if let Err(e) = std::fs::remove_dir_all(&gone) {
            tracing::warn!(plugin = %p.id, error = %e, "removing a plugin's files");
        }
        self.emit("remove", &p.id, key);
        Ok(())
    }

    /// Starts the enabled plugins (adopting those whose shim outlived the last
    /// berthd); one that fails to start stays installed, disabled.
    pub async fn restore(self: &Arc<Self>) {
        let _op = self.ops.lock().await;
        for p in self.all() {
            if !p.rec().plugin.enabled {
                continue;
            }
            if self.adopt(&p).await {
                continue;
            }
            if let Err(e) = self.start(&p).await {
                tracing::error!(plugin = %p.name(), error = %e, "starting an enabled plugin");
                p.rec().plugin.enabled = false;
                let _ = self.save(&p);
            }
        }
    }

    /// Stops every running plugin (they stay enabled and start again with the
    /// next berthd), as dockerd does without live-restore.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let _op = self.ops.lock().await;
        for p in self.all() {
            self.stop(&p).await;
        }
    }

    /// A place for a plugin being made, removed if the daemon stops half-way.
    fn tmp_dir(&self) -> ApiResult<PathBuf> {
        let t = self
            .root
            .join("tmp")
            .join(hex::encode(rand::random::<[u8; 8]>()));
        std::fs::create_dir_all(t.join("rootfs")).map_err(|e| io_err("creating", &t, e))?;
        std::fs::create_dir_all(t.join("blobs")).map_err(|e| io_err("creating", &t, e))?;
        Ok(t)
    }

    /// Makes a new plugin from a directory prepared in [`Managed::tmp_dir`]
    /// (rootfs and blobs there); `name` must be free.
    fn install(
        &self,
        name: String,
        config: Config,
        config_digest: String,
        blobsums: Vec<String>,
        reference: String,
        tmp: &Path,
    ) -> ApiResult<Arc<Plugin>> {
        if self.lookup(&name)?.is_some_and(|p| p.name() == name) {
            return Err(ApiError::conflict(format!("plugin {name} already exists")));
        }
        let id = crate::daemon::ids::new_id();
        let settings = config.initial_settings();
        let rec = Record {
            plugin: PluginObj {
                id: id.clone(),
                name,
                enabled: false,
                settings,
                reference,
                config,
            },
            config: config_digest,
            blobsums,
        };
        let dir = self.dir(&id);
        std::fs::rename(tmp, &dir).map_err(|e| io_err("installing", &dir, e))?;
        let p = Arc::new(Plugin {
            id: id.clone(),
            rec: Mutex::new(rec),
            refs: AtomicUsize::new(0),
            running: Mutex::new(None),
        });
        if let Err(e) = self.save(&p) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, p.clone());
        Ok(p)
    }
}
