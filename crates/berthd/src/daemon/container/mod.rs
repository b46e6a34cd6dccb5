//! The container service: the containers berthd knows, by id and name, and their
//! records on disk. Each feature is a file: `create`, `start` (the shim),
//! `stop` (kill, stop, wait, remove, exits), `inspect` (inspect, ps), `exec`,
//! `logs`, `stats`, `lifecycle` (pause, update, rename, top, prune), `health`,
//! `restart`, `mounts`, `endpoint` and `connect` (networking), `dns`.
//!

pub mod attach;
mod connect;
mod create;
pub mod detach;
mod dns;
pub mod endpoint;
mod error;
pub mod exec;
mod health;
mod inspect;
mod lifecycle;
mod limits;
pub mod logdrivers;
pub mod logs;
pub mod mounts;
mod netfiles;
mod options;
mod platform;
pub mod record;
pub mod restart;
pub mod security;
mod shm;
pub mod signal;
pub mod start;
mod stats;
mod stop;
mod users;

use crate::daemon::container::record::{Container, Record};
use crate::daemon::paths::Paths;
use crate::error::{ApiError, ApiResult};
use berth_image::meta::ContainerRow;
use berth_image::Store;
pub use error::Error;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub struct Containers {
    map: RwLock<HashMap<String, Arc<Container>>>,
    /// Exec instances, by id; kept until their container is removed.
    execs: RwLock<HashMap<String, Arc<crate::daemon::container::record::Exec>>>,
    pub(super) store: Arc<Store>,
    pub(super) paths: Paths,
    /// Set when berthd stops: exits then are not restarted by policy.
    shutting_down: std::sync::atomic::AtomicBool,
    pub(super) events: Arc<crate::daemon::events::Events>,
    pub(super) hierarchy: berth_runtime::cgroups::Hierarchy,
    pub(super) net: Arc<crate::daemon::network::Networks>,
    pub(super) volumes: Arc<crate::daemon::volume::Volumes>,
    /// The embedded DNS servers' tasks, by container id.
    dns: std::sync::Mutex<HashMap<String, Vec<tokio::task::AbortHandle>>>,
    /// Compiled seccomp filters.
    pub(super) filters: crate::daemon::container::security::Filters,
    /// The cgroup hierarchies a container mounts (fixed with the host's layout,
    /// worked out once rather than at every start).
    pub(super) cgroup_mounts: std::sync::OnceLock<Vec<berth_runtime::spec::CgroupMount>>,
    /// Record saves that failed where no caller could act on it.
    persist_failures: std::sync::atomic::AtomicU64,
    /// What a container gets when it does not say (daemon.json's defaults).
    pub(super) defaults: Defaults,
    /// `default-ulimits`, reloadable (the rest of `defaults` is fixed at start).
    ulimits: RwLock<Vec<berth_api::Ulimit>>,
}

/// daemon.json's defaults for containers: `default-shm-size`, `default-ulimits`,
/// `log-driver` with `log-opts`, `default-cgroupns-mode`.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub shm_size: i64,
    pub ulimits: Vec<berth_api::Ulimit>,
    pub log: berth_api::LogConfig,
    pub cgroupns_mode: String,
    /// dockerd's `init`: containers run under docker-init unless `--init=false`.
    pub init: bool,
    /// dockerd's `init-path`: the binary bound as docker-init (berth-shim's own
    /// init when None).
    pub init_path: Option<std::path::PathBuf>,
    /// daemon.json's `runtimes`, by name: what each would run. berth runs its own
    /// runtime only, so a container asking for one of these is refused saying so
    /// (a daemon.json made for dockerd still starts berthd).
    pub runtimes: std::collections::BTreeMap<String, String>,
    /// dockerd's `--cpu-rt-runtime`: the real-time budget of the parent cgroup,
    /// which containers' own budgets come out of.
    pub cpu_rt_runtime: i64,
    /// dockerd's `seccomp-profile` and `no-new-privileges`.
    pub security: crate::daemon::container::security::DaemonSecurity,
    /// dockerd's `userns-remap`: containers get a user namespace of their own with
    /// this mapping unless they say `--userns=host`.
    pub userns: Option<berth_runtime::spec::IdMap>,
    /// A rootless berthd: containers live in its user namespace.
    pub rootless: bool,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            shm_size: 64 << 20,
            ulimits: Vec::new(),
            log: berth_api::LogConfig {
                kind: "json-file".into(),
                config: None,
            },
            cgroupns_mode: "private".into(),
            init: false,
            init_path: None,
            runtimes: Default::default(),
            cpu_rt_runtime: 0,
            security: Default::default(),
            userns: None,
            rootless: false,
        }
    }
}

impl Defaults {
    /// The daemon's ulimits under the container's own (a name the container
    /// gives wins), as dockerd merges them when it starts a container.
    pub fn ulimits(&self, own: &[berth_api::Ulimit]) -> Vec<berth_api::Ulimit> {
        let mut out: Vec<berth_api::Ulimit> = self
            .ulimits
            .iter()
            .filter(|d| !own.iter().any(|o| o.name == d.name))
            .cloned()
            .collect();
        out.extend(own.iter().cloned());
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// Outcome of start/stop when the container already is where it was asked to go:
/// Docker answers 304 Not Modified.
#[derive(Debug, PartialEq, Eq)]
pub enum Changed {
    Yes,
    AlreadyDone,
}

impl Containers {
    pub fn new(
        store: Arc<Store>,
        paths: Paths,
        hierarchy: berth_runtime::cgroups::Hierarchy,
        net: Arc<crate::daemon::network::Networks>,
        volumes: Arc<crate::daemon::volume::Volumes>,
        events: Arc<crate::daemon::events::Events>,
        defaults: Defaults,
    ) -> Containers {
        Containers {
            ulimits: RwLock::new(defaults.ulimits.clone()),
            filters: crate::daemon::container::security::Filters::new(defaults.security.clone()),
            defaults,
            map: RwLock::new(HashMap::new()),
            execs: RwLock::new(HashMap::new()),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            events,
            store,
            paths,
            hierarchy,
            net,
            volumes,
            dns: std::sync::Mutex::new(HashMap::new()),
            cgroup_mounts: std::sync::OnceLock::new(),
            persist_failures: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(super) fn dns_tasks(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Vec<tokio::task::AbortHandle>>> {
        self.dns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn execs(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<crate::daemon::container::record::Exec>>>
    {
        self.execs.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn execs_mut(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<crate::daemon::container::record::Exec>>>
    {
        self.execs.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Emits a container event with Docker's attributes (name, image, labels)
    /// and `extra`.
    pub(super) fn emit(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut attrs = crate::daemon::events::Attributes::new();
        {
            let r = c.rec();
            for (k, v) in r.config.labels.clone().unwrap_or_default() {
                attrs.insert(k, v);
            }
            attrs.insert("image".into(), r.config.image.clone());
            attrs.insert("name".into(), r.name.clone());
        }
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.emit("container", action, &c.id, attrs);
    }

    /// berthd is stopping: exits from now on are not restarted by policy.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn shutting_down(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops a container for berthd's own shutdown: not a manual stop, so restart
    /// policies bring it back when berthd starts again.
    pub async fn stop_for_shutdown(&self, key: &str) -> ApiResult<Changed> {
        let c = self.get(key)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, None, None).await
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The container's cgroup, below each hierarchy's root: its own
    /// `--cgroup-parent`, or the daemon's.
    pub fn cgroup_path(&self, r: &Record) -> String {
        // No cgroups: no path (the shim then makes none).
        if self.hierarchy.is_none() {
            return String::new();
        }
        let parent = if r.host_config.cgroup_parent.is_empty() {
            &self.paths.cgroup_parent
        } else {
            &r.host_config.cgroup_parent
        };
        format!("{}/{}", parent.trim_matches('/'), r.id)
    }

    pub fn hierarchy(&self) -> &berth_runtime::cgroups::Hierarchy {
        &self.hierarchy
    }

    pub(super) fn insert(&self, c: Arc<Container>) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.id.clone(), c);
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Finds a container by full id, name (with or without `/`), or unique id prefix.
    pub fn get(&self, key: &str) -> ApiResult<Arc<Container>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(key) {
            return Ok(c.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(c) = map.values().find(|c| c.rec().name == name) {
            return Ok(c.clone());
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<_> = map.values().filter(|c| c.id.starts_with(key)).collect();
            match hits.len() {
                1 => return Ok(hits[0].clone()),
                n if n > 1 => {
                    return Err(ApiError::invalid(format!(
                        "multiple IDs found with provided prefix: {key}"
                    )))
                }
                _ => {}
            }
        }
        Err(ApiError::not_found(format!("No such container: {key}")))
    }

    pub(super) fn name_taken(&self, name: &str) -> Option<String> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .find(|c| c.rec().name == name)
            .map(|c| c.id.clone())
    }

    pub(super) fn persist(&self, c: &Container) -> ApiResult<()> {
        let rec = c.snapshot();
        let row = ContainerRow {
            id: rec.id.clone(),
            name: rec.name.clone(),
            image_id: rec.image.clone(),
            data: serde_json::to_vec(&rec).expect("records serialise"),
        };
        self.store.container_put(&row).map_err(|source| {
            Error::Persist {
                id: rec.id.clone(),
                source,
            }
            .into()
        })
    }

    /// Saves a record where no caller can act on a failure (an exit, a restart,
    /// a health result): the failure is logged with its reason and counted, and
    /// the in-memory record stays the truth until the next save or restart of
    /// berthd, which reads the state back from the shims.
    pub(super) fn persist_or_log(&self, c: &Container, after: &'static str) {
        if let Err(e) = self.persist(c) {
            let n = self
                .persist_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            tracing::error!(container = %c.id, after, failures = n, error = %e, "could not save a container record");
        }
    }

    /// How many record saves have failed since berthd started.
    /// The daemon's `default-ulimits` (reloadable) under a container's own.
    pub fn merged_ulimits(&self, own: &[berth_api::Ulimit]) -> Vec<berth_api::Ulimit> {
        let d = Defaults {
            ulimits: self
                .ulimits
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            ..Defaults::default()
        };
        d.ulimits(own)
    }

    /// SIGHUP: new `default-ulimits`, for the containers started from now on.
    pub fn set_default_ulimits(&self, u: Vec<berth_api::Ulimit>) {
        *self.ulimits.write().unwrap_or_else(|p| p.into_inner()) = u;
    }

    /// The daemon's default log driver (`docker info`'s LoggingDriver).
    pub fn default_log_driver(&self) -> &str {
        &self.defaults.log.kind
    }

    /// The daemon's default seccomp profile as `docker info` names it.
    pub fn seccomp_profile_name(&self) -> &str {
        &self.defaults.security.profile_name
    }

    /// Whether containers get a user namespace of their own (`userns-remap`).
    pub fn userns_remapped(&self) -> bool {
        self.defaults.userns.is_some()
    }

    /// A rootless berthd's containers.
    pub fn rootless(&self) -> bool {
        self.defaults.rootless
    }

    /// The controllers a rootless berthd's containers get: those of its
    /// delegated subtree, none without one.
    pub(super) fn rootless_controllers(&self) -> Vec<String> {
        self.hierarchy
            .unified
            .as_ref()
            .and_then(|u| {
                std::fs::read_to_string(
                    u.join(&self.paths.cgroup_parent).join("cgroup.controllers"),
                )
                .ok()
            })
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    pub fn persist_failures(&self) -> u64 {
        self.persist_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.get(id).map(|c| c.is_running()).unwrap_or(false)
    }
}
