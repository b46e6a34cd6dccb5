//! The container service: lookup, list, inspect, kill, stop, wait, remove. Create
//! lives in `create.rs`, start and the shim in `start.rs`, logs in `logs.rs`.

pub mod archive;
mod commit;
mod connect;
mod create;
pub mod detach;
mod dns;
pub mod endpoint;
pub mod exec;
mod health;
mod lifecycle;
mod limits;
pub mod logs;
pub mod mounts;
pub mod record;
pub mod restart;
pub mod security;
pub mod signal;
pub mod start;
mod stats;

use crate::daemon::container::record::{Container, Record, Snapshot, Status};
use crate::daemon::now_rfc3339;
use crate::daemon::parse_time;
use crate::daemon::Paths;
use crate::error::{chain, ApiError, ApiResult};
use berth_api::{ContainerInspect, ContainerState, ContainerSummary, WaitError, WaitResponse};
use berth_image::meta::ContainerRow;
use berth_image::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub struct Containers {
    map: RwLock<HashMap<String, Arc<Container>>>,
    /// Exec instances, by id; kept until their container is removed.
    execs: RwLock<HashMap<String, Arc<crate::daemon::container::exec::Exec>>>,
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
    ) -> Containers {
        Containers {
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
            filters: crate::daemon::container::security::Filters::default(),
        }
    }

    pub(super) fn dns_tasks(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Vec<tokio::task::AbortHandle>>> {
        self.dns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn execs(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<crate::daemon::container::exec::Exec>>>
    {
        self.execs.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn execs_mut(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<crate::daemon::container::exec::Exec>>>
    {
        self.execs.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Emits a container event with Docker's attributes (name, image, labels)
    /// and `extra`.
    pub(super) fn emit(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut attrs = serde_json::Map::new();
        {
            let r = c.rec();
            for (k, v) in r.config.labels.clone().unwrap_or_default() {
                attrs.insert(k, v.into());
            }
            attrs.insert("image".into(), r.config.image.clone().into());
            attrs.insert("name".into(), r.name.clone().into());
        }
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone().into());
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
        self.store.container_put(&row).map_err(ApiError::from)
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.get(id).map(|c| c.is_running()).unwrap_or(false)
    }

    /// The writable layer's size, and that plus the image's (`size=1`).
    fn sizes(&self, r: &Record) -> (i64, i64) {
        let rw = crate::daemon::dir_size(&self.paths.writable(&r.id)) as i64;
        let image = self.store.resolve(&r.image).map(|i| i.size()).unwrap_or(0);
        (rw, rw + image)
    }

    pub fn inspect(&self, key: &str, size: bool) -> ApiResult<ContainerInspect> {
        let c = self.get(key)?;
        let r = c.snapshot();
        let dir = self.paths.container_dir(&r.id);
        let st = &r.state;
        Ok(ContainerInspect {
            id: r.id.clone(),
            created: r.created.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            state: ContainerState {
                status: st.status_text().into(),
                running: st.status == Status::Running,
                paused: st.paused,
                restarting: st.restarting,
                oom_killed: st.oom_killed,
                dead: st.status == Status::Dead,
                pid: st.pid,
                exit_code: st.exit_code,
                error: st.error.clone(),
                started_at: st.started_at.clone(),
                finished_at: st.finished_at.clone(),
                health: st
                    .health
                    .as_ref()
                    .and_then(|h| serde_json::to_value(h).ok()),
            },
            image: r.image.clone(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            log_path: if r.host_config.log_config.kind == "none" {
                String::new()
            } else {
                self.paths.log_path(&r.id).display().to_string()
            },
            name: format!("/{}", r.name),
            restart_count: r.restart_count,
            driver: self.paths.driver.name().into(),
            platform: "linux".into(),
            exec_ids: None,
            host_config: r.host_config.clone(),
            graph_driver: match self.paths.driver {
                crate::daemon::Driver::Overlay2 => serde_json::json!({
                    "Name": "overlay2",
                    "Data": {
                        "UpperDir": dir.join("upper"),
                        "WorkDir": dir.join("work"),
                        "MergedDir": dir.join("merged"),
                    }
                }),
                crate::daemon::Driver::Vfs => serde_json::json!({ "Name": "vfs", "Data": null }),
            },
            mounts: self.mounts_json(&r),
            size_rw: size.then(|| self.sizes(&r).0),
            size_root_fs: size.then(|| self.sizes(&r).1),
            config: r.config.clone(),
            network_settings: self.network_settings(&r),
            ..Default::default()
        })
    }

    pub fn list(
        &self,
        all: bool,
        limit: Option<i64>,
        filters: &HashMap<String, Vec<String>>,
        size: bool,
    ) -> ApiResult<Vec<ContainerSummary>> {
        for (k, vals) in filters {
            match k.as_str() {
                "id" | "name" | "label" | "ancestor" => {}
                "status" => {
                    for v in vals {
                        if ![
                            "created",
                            "restarting",
                            "running",
                            "removing",
                            "paused",
                            "exited",
                            "dead",
                        ]
                        .contains(&v.as_str())
                        {
                            return Err(ApiError::invalid(format!("invalid filter 'status={v}'")));
                        }
                    }
                }
                "exited" => {
                    for v in vals {
                        v.parse::<i64>().map_err(|_| {
                            ApiError::invalid(format!("invalid filter 'exited={v}'"))
                        })?;
                    }
                }
                other => return Err(ApiError::invalid(format!("invalid filter '{other}'"))),
            }
        }
        let ancestors: Vec<String> = filters
            .get("ancestor")
            .map(|a| {
                a.iter()
                    .filter_map(|n| self.store.resolve(n).ok().map(|i| i.id))
                    .collect()
            })
            .unwrap_or_default();
        let mut recs: Vec<Record> = self.all().iter().map(|c| c.snapshot()).collect();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        // As in dockerd, a limit (`ps -n`, `ps -l`) or a status filter implies all.
        let all = all || limit.is_some_and(|n| n > 0);
        let explicit_status = filters.contains_key("status") || filters.contains_key("exited");
        let matches = |r: &Record| {
            let f = |k: &str| filters.get(k).filter(|v| !v.is_empty());
            if !all && !explicit_status && r.state.status != Status::Running {
                return false;
            }
            if let Some(ids) = f("id") {
                if !ids.iter().any(|i| r.id.starts_with(i.as_str())) {
                    return false;
                }
            }
            if let Some(ns) = f("name") {
                if !ns
                    .iter()
                    .any(|n| r.name.contains(n.trim_start_matches('/')))
                {
                    return false;
                }
            }
            if let Some(st) = f("status") {
                if !st.iter().any(|s| s == r.state.status_text()) {
                    return false;
                }
            }
            if let Some(codes) = f("exited") {
                if r.state.status != Status::Exited
                    || !codes
                        .iter()
                        .any(|c| c.parse::<i64>().ok() == Some(r.state.exit_code))
                {
                    return false;
                }
            }
            if let Some(labels) = f("label") {
                let have = r.config.labels.clone().unwrap_or_default();
                let ok = labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => have.get(k).map(String::as_str) == Some(v),
                    None => have.contains_key(l),
                });
                if !ok {
                    return false;
                }
            }
            if filters.contains_key("ancestor") && !ancestors.contains(&r.image) {
                return false;
            }
            true
        };
        let mut out: Vec<ContainerSummary> = recs
            .iter()
            .filter(|r| matches(r))
            .map(|r| {
                let mut s = summary(r);
                s.mounts = self.mounts_json(r);
                if size {
                    let (rw, root) = self.sizes(r);
                    s.size_rw = Some(rw);
                    s.size_root_fs = Some(root);
                }
                s
            })
            .collect();
        if let Some(n) = limit.filter(|n| *n > 0) {
            out.truncate(n as usize);
        }
        Ok(out)
    }

    /// Sends a signal to the container's init process.
    pub fn kill(&self, key: &str, sig: Option<&str>) -> ApiResult<()> {
        let c = self.get(key)?;
        let signo = match sig.filter(|s| !s.is_empty()) {
            None => 9,
            Some(s) => {
                signal::parse(s).ok_or_else(|| ApiError::invalid(format!("Invalid signal: {s}")))?
            }
        };
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Cannot kill container: {key}: Container {} is not running",
                c.id
            )));
        }
        {
            // Killing with SIGKILL or the stop signal is a stop (Docker's rule).
            let mut r = c.rec();
            let stop_signal = r
                .config
                .stop_signal
                .as_deref()
                .and_then(signal::parse)
                .unwrap_or(15);
            if signo == 9 || signo == stop_signal {
                r.manually_stopped = true;
            }
        }
        self.signal(&c, signo)
    }

    /// Sends a signal, then thaws a paused container so that it can act on it
    /// (Docker's order for kill, stop and forced removal).
    pub(super) fn signal(&self, c: &Container, signo: i32) -> ApiResult<()> {
        send_signal(c, signo)?;
        self.emit(c, "kill", &[("signal", signo.to_string())]);
        let was_paused = std::mem::replace(&mut c.rec().state.paused, false);
        if was_paused {
            let path = format!("{}/{}", self.paths.cgroup_parent.trim_matches('/'), c.id);
            self.hierarchy
                .freeze(&path, false)
                .map_err(|e| ApiError::internal(format!("unpausing {}: {}", c.id, chain(&e))))?;
        }
        Ok(())
    }

    /// Stops a container: its stop signal, then SIGKILL after the timeout.
    pub async fn stop(
        &self,
        key: &str,
        sig: Option<&str>,
        timeout: Option<i64>,
    ) -> ApiResult<Changed> {
        let c = self.get(key)?;
        {
            // A manual stop: restart policies leave the container stopped, and a
            // restart waiting out its back-off is cancelled.
            let mut r = c.rec();
            r.manually_stopped = true;
            r.state.restarting = false;
        }
        let _op = c.op.lock().await;
        let _ = self.persist(&c);
        let changed = self.stop_locked(&c, sig, timeout).await?;
        if changed == Changed::Yes {
            self.emit(&c, "stop", &[]);
        }
        Ok(changed)
    }

    pub(super) async fn stop_locked(
        &self,
        c: &Arc<Container>,
        sig: Option<&str>,
        timeout: Option<i64>,
    ) -> ApiResult<Changed> {
        if !c.is_running() {
            return Ok(Changed::AlreadyDone);
        }
        let (stop_signal, default_timeout) = {
            let r = c.rec();
            (
                r.config.stop_signal.clone().filter(|s| !s.is_empty()),
                r.config.stop_timeout.unwrap_or(10),
            )
        };
        let sig_name = sig
            .filter(|s| !s.is_empty())
            .map(String::from)
            .or(stop_signal)
            .unwrap_or_else(|| "SIGTERM".into());
        let signo = signal::parse(&sig_name)
            .ok_or_else(|| ApiError::invalid(format!("Invalid signal: {sig_name}")))?;
        let timeout = timeout.unwrap_or(default_timeout);
        let mut rx = c.watch.subscribe();
        if signo != 9 {
            self.signal(c, signo)?;
            let wait = rx.wait_for(|s| !s.running);
            let exited = if timeout < 0 {
                wait.await.is_ok()
            } else {
                tokio::time::timeout(Duration::from_secs(timeout as u64), wait)
                    .await
                    .is_ok()
            };
            if exited {
                return Ok(Changed::Yes);
            }
        }
        self.signal(c, 9)?;
        let _ = rx.wait_for(|s| !s.running).await;
        Ok(Changed::Yes)
    }

    /// Registers a wait now and returns what resolves when the condition holds, so
    /// that the caller can answer with headers before the container even starts.
    pub fn wait(
        &self,
        key: &str,
        cond: WaitCondition,
    ) -> ApiResult<impl std::future::Future<Output = WaitResponse>> {
        let c = self.get(key)?;
        let mut rx = c.watch.subscribe();
        let start_exits = rx.borrow().exits;
        Ok(async move {
            let done = |s: &Snapshot| match cond {
                WaitCondition::NotRunning => !s.running,
                WaitCondition::NextExit => s.exits > start_exits,
                WaitCondition::Removed => s.removed,
            };
            let waited = rx.wait_for(done).await.map(|s| s.clone());
            // Err: the container is gone, and its last state is the answer.
            let snap = waited.unwrap_or_else(|_| rx.borrow().clone());
            WaitResponse {
                status_code: snap.exit_code,
                error: (!snap.error.is_empty()).then(|| WaitError {
                    message: snap.error.clone(),
                }),
            }
        })
    }

    /// Removes a container; `force` kills it first if it runs.
    pub async fn remove(&self, key: &str, force: bool, volumes: bool) -> ApiResult<()> {
        let c = self.get(key)?;
        let _op = c.op.lock().await;
        if c.is_running() {
            if !force {
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    c.name()
                )));
            }
            let mut rx = c.watch.subscribe();
            self.signal(&c, 9)?;
            let _ = rx.wait_for(|s| !s.running).await;
        }
        self.remove_stopped(&c, volumes)
    }

    /// Whether a shim answers on the container's socket: the kernel's word on
    /// whether it runs, whatever the record says.
    pub(super) fn shim_alive(&self, id: &str) -> bool {
        std::os::unix::net::UnixStream::connect(self.paths.run_dir(id).join("sock")).is_ok()
    }

    /// Removes a stopped container (and its anonymous volumes with `volumes`). The
    /// record says "removing" on disk first, so that berthd finishes the removal
    /// after a crash at any point; the row goes last.
    pub(super) fn remove_stopped(&self, c: &Arc<Container>, volumes: bool) -> ApiResult<()> {
        if self.shim_alive(&c.id) {
            return Err(ApiError::conflict(format!(
                "cannot remove container \"/{}\": its process is still running",
                c.name()
            )));
        }
        {
            let mut r = c.rec();
            r.state.status = Status::Removing;
            r.remove_volumes |= volumes;
        }
        self.persist(c)?;
        // Attaches waiting for a start that will not come end now.
        c.attach_state().pending.clear();
        let _ = std::fs::remove_dir_all(self.paths.run_dir(&c.id));
        let dir = self.paths.container_dir(&c.id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                c.rec().state.status = Status::Dead;
                return Err(ApiError::internal(format!(
                    "removing {}: {}",
                    dir.display(),
                    chain(&e)
                )));
            }
        }
        self.store.container_delete(&c.id)?;
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&c.id);
        self.execs_mut().retain(|_, e| e.container_id != c.id);
        self.emit(c, "destroy", &[]);
        c.watch.send_modify(|s| s.removed = true);
        let rec = c.snapshot();
        if rec.remove_volumes {
            self.remove_anonymous_volumes(&rec);
        }
        Ok(())
    }

    /// Records an exit reported by the shim (or found after it).
    pub(super) fn on_exit(
        self: &Arc<Self>,
        c: &Arc<Container>,
        exit: Option<berth_runtime::shimproto::ExitRecord>,
    ) {
        let (code, auto_remove) = {
            let mut r = c.rec();
            let (code, finished, oom, err) = match &exit {
                Some(e) => (
                    e.exit_code as i64,
                    e.finished_at.clone(),
                    e.oom_killed,
                    String::new(),
                ),
                None => (
                    255,
                    now_rfc3339(),
                    false,
                    "berth-shim exited without reporting the container's exit".to_string(),
                ),
            };
            r.state.status = Status::Exited;
            r.state.paused = false;
            r.state.pid = 0;
            r.state.exit_code = code;
            r.state.finished_at = finished;
            r.state.oom_killed = oom;
            r.state.error = err;
            (code, r.host_config.auto_remove)
        };
        *c.pidfd.lock().unwrap_or_else(|p| p.into_inner()) = None;
        c.attach_state().live = false;
        self.release_network(c);
        self.release_volumes(&c.snapshot());
        if let Err(e) = self.persist(c) {
            tracing::error!(container = %c.id, error = %e, "recording exit");
        }
        if c.rec().state.oom_killed {
            self.emit(c, "oom", &[]);
        }
        self.emit(c, "die", &[("exitCode", code.to_string())]);
        let err = c.rec().state.error.clone();
        c.watch.send_modify(|s| {
            s.running = false;
            s.exit_code = code;
            s.exits += 1;
            s.error = err;
        });
        let _ = std::fs::remove_dir_all(self.paths.run_dir(&c.id));
        if !auto_remove {
            self.maybe_restart(c);
        } else {
            let me = self.clone();
            let c = c.clone();
            tokio::spawn(async move {
                let _op = c.op.lock().await;
                // --rm takes the anonymous volumes too.
                if !c.is_running() {
                    if let Err(e) = me.remove_stopped(&c, true) {
                        tracing::error!(container = %c.id, error = %e, "auto-remove");
                    }
                }
            });
        }
    }

    pub fn counts(&self) -> (i64, i64, i64) {
        let all = self.all();
        let running = all.iter().filter(|c| c.is_running()).count() as i64;
        (all.len() as i64, running, all.len() as i64 - running)
    }
}

fn send_signal(c: &Container, signo: i32) -> ApiResult<()> {
    let guard = c.pidfd.lock().unwrap_or_else(|p| p.into_inner());
    let Some(fd) = guard.as_ref() else {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    };
    let sig = rustix::process::Signal::from_named_raw(signo)
        .ok_or_else(|| ApiError::invalid(format!("Invalid signal: {signo}")))?;
    match rustix::process::pidfd_send_signal(fd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(ApiError::internal(format!(
            "sending signal {signo} to {}: {e}",
            c.id
        ))),
    }
}

fn summary(r: &Record) -> ContainerSummary {
    let created = parse_time(&r.created).map_or(0, |t| t.timestamp());
    let now = chrono::Utc::now();
    let status = match r.state.status {
        Status::Running => {
            let since = parse_time(&r.state.started_at).unwrap_or(now);
            let paused = if r.state.paused { " (Paused)" } else { "" };
            let health = match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_string(),
                Some(s) => format!(" ({s})"),
                None => String::new(),
            };
            format!("Up {}{paused}{health}", human_duration(now - since))
        }
        Status::Exited if r.state.restarting => {
            let since = parse_time(&r.state.finished_at).unwrap_or(now);
            format!(
                "Restarting ({}) {} ago",
                r.state.exit_code,
                human_duration(now - since)
            )
        }
        Status::Exited => {
            let since = parse_time(&r.state.finished_at).unwrap_or(now);
            format!(
                "Exited ({}) {} ago",
                r.state.exit_code,
                human_duration(now - since)
            )
        }
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    };
    let mut command = r.path.clone();
    for a in &r.args {
        command.push(' ');
        command.push_str(a);
    }
    let mode = if r.host_config.network_mode.is_empty() {
        "default".to_string()
    } else {
        r.host_config.network_mode.clone()
    };
    ContainerSummary {
        id: r.id.clone(),
        names: vec![format!("/{}", r.name)],
        image: r.config.image.clone(),
        image_id: r.image.clone(),
        command,
        created,
        ports: Containers::summary_ports(r),
        labels: r.config.labels.clone().unwrap_or_default(),
        state: r.state.status_text().into(),
        status,
        host_config: serde_json::json!({ "NetworkMode": mode }),
        network_settings: serde_json::json!({ "Networks": r
            .endpoints
            .iter()
            .map(|(n, e)| (n.clone(), crate::daemon::container::endpoint::endpoint_json(e, &r.config.hostname, &r.name, &r.id)))
            .collect::<serde_json::Map<_, _>>() }),
        mounts: vec![],
        size_rw: None,
        size_root_fs: None,
    }
}

fn human_duration(d: chrono::TimeDelta) -> String {
    berth_api::human_duration(d.num_seconds())
}

impl crate::daemon::volume::VolumeUsers for Containers {
    fn volume_users(&self, name: &str) -> Vec<String> {
        Containers::volume_users(self, name)
    }
}

impl crate::daemon::network::NetworkUsers for Containers {
    fn attachments(&self) -> Vec<crate::daemon::network::Attachment> {
        let with = |ip: Option<std::net::IpAddr>, p: u8| {
            ip.map(|i| format!("{i}/{p}")).unwrap_or_default()
        };
        let mut out = Vec::new();
        for c in self.all() {
            let r = c.rec();
            let running = r.state.status == Status::Running;
            for ep in r.endpoints.values() {
                out.push(crate::daemon::network::Attachment {
                    network_id: ep.network_id.clone(),
                    container_id: r.id.clone(),
                    container_name: r.name.clone(),
                    running,
                    endpoint_id: ep.endpoint_id.clone(),
                    mac: ep.mac.clone(),
                    ipv4: with(ep.ipv4, ep.prefix4),
                    ipv6: with(ep.ipv6, ep.prefix6),
                });
            }
        }
        out
    }
}

impl crate::daemon::image::ImageUsers for Containers {
    fn image_users(&self) -> HashMap<String, i64> {
        let mut users: HashMap<String, i64> = HashMap::new();
        for c in self.all() {
            *users.entry(c.rec().image.clone()).or_default() += 1;
        }
        users
    }

    fn is_running(&self, id: &str) -> bool {
        Containers::is_running(self, id)
    }
}
