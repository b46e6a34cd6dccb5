//! The start path: describe the container as a [`Spec`], hand it to a new shim
//! together with a pre-bound socket, and learn the outcome from the monitor
//! connection. Also: attaching to a container's output, and reattaching to shims
//! that outlived a previous berthd.

use crate::daemon::container::record::{Container, Record, Status};
use crate::daemon::container::{Changed, Containers, Error};
use crate::daemon::time::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use berth_image::Image;
use berth_runtime::shimproto::{ExitRecord, Started, HELD_FDS_START, NETNS_FD};
use berth_runtime::spec::{
    CgroupSpec, FileBind, NetworkMode, Overlay, Process, Spec, DEFAULT_MASKED_PATHS, DEFAULT_PATH,
    DEFAULT_READONLY_PATHS,
};
use berth_runtime::user;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Asks the shim listening on `sock` to resize its terminal.
pub(super) async fn resize_socket(sock: &Path, rows: u16, cols: u16) -> ApiResult<()> {
    use berth_runtime::shimproto::{input_frame, IN_RESIZE, WANT_CONTROL};
    let mut s = UnixStream::connect(sock)
        .await
        .map_err(|e| ApiError::conflict(format!("the process is not running: {e}")))?;
    let mut size = rows.to_be_bytes().to_vec();
    size.extend_from_slice(&cols.to_be_bytes());
    let mut msg = vec![WANT_CONTROL];
    msg.extend(input_frame(IN_RESIZE, &size));
    s.write_all(&msg)
        .await
        .map_err(|source| Error::Resize { source }.into())
}

/// Where `--init` puts its init, as Docker does.
const INIT_PATH: &str = "/sbin/docker-init";

/// Where an attach's stream comes from.
pub enum AttachSource {
    /// Handed over by the next start (or dropped when the container is removed).
    Pending(tokio::sync::oneshot::Receiver<UnixStream>),
    /// The running shim's socket, and what to ask it for.
    Socket(PathBuf, u8),
}

impl AttachSource {
    pub async fn connect(self) -> Option<UnixStream> {
        match self {
            AttachSource::Pending(rx) => rx.await.ok(),
            AttachSource::Socket(path, want) => {
                let mut s = UnixStream::connect(&path).await.ok()?;
                s.write_all(&[want]).await.ok()?;
                Some(s)
            }
        }
    }
}

/// Reads a small file of the container's filesystem from its layers (writable
/// layer first), never following a symlink: a hostile image must not make berthd
/// read a host file.
fn read_rootfs_file(layers: &[PathBuf], rel: &str) -> String {
    for dir in layers {
        let Ok(root) = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        match rustix::fs::openat2(
            &root,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            Ok(fd) => {
                let mut s = String::new();
                let _ = std::fs::File::from(fd).take(1 << 20).read_to_string(&mut s);
                return s;
            }
            // Present but not a readable file (a whiteout, a symlink): stop here.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(_) => return String::new(),
        }
    }
    String::new()
}

/// `HostConfig.ConsoleSize` ([rows, columns]) when the client gave a real one.
fn console_size(hc: &berth_api::HostConfig) -> Option<(u16, u16)> {
    let v = hc.other.get("ConsoleSize")?.as_array()?;
    let rows = v.first()?.as_u64()? as u16;
    let cols = v.get(1)?.as_u64()? as u16;
    (rows > 0 && cols > 0).then_some((rows, cols))
}

/// A process's environment in a container: PATH (Docker's default when the image
/// sets none), HOSTNAME, the container's variables, `extra` (an exec's) over them,
/// and HOME from the user's passwd entry when nothing set it.
pub(super) fn process_env(r: &Record, extra: &[String], home: &str) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let cfg_env = r.config.env.clone().unwrap_or_default();
    let mut env = Vec::new();
    if !cfg_env.iter().chain(extra).any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("HOSTNAME={}", r.config.hostname));
    for e in cfg_env.iter().chain(extra) {
        let k = key(e);
        env.retain(|x| key(x) != k);
        env.push(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// What became of a container's shim, as its run directory tells.
enum ShimState {
    /// It answered: the container runs with this pid; the monitor is connected.
    Alive(i32, BufReader<UnixStream>),
    /// It is gone and recorded this exit.
    Exited(ExitRecord),
    /// No shim and no exit record.
    Gone,
}

impl Containers {
    /// At restore, for a container that does not run: its record is written back
    /// without what it no longer holds, its volume filesystems and a stale cgroup
    /// go, and an auto-remove
    /// container that ran is removed (as dockerd does when it starts).
    fn settle_stopped(self: &Arc<Self>, c: &Arc<Container>) {
        self.persist_or_log(c, "recording a stopped container at restore");
        // A volume filesystem mounted for it goes if no running container uses it.
        self.release_volumes(&c.snapshot());
        self.unmount_shm(&c.id);
        let path = self.cgroup_path(&c.rec());
        let _ = self
            .hierarchy
            .existing(&berth_runtime::spec::CgroupSpec {
                path,
                ..Default::default()
            })
            .remove();
        let (auto, status) = {
            let r = c.rec();
            (r.host_config.auto_remove, r.state.status)
        };
        if auto && status == Status::Exited {
            if let Err(e) = self.remove_stopped(c, true) {
                tracing::error!(container = %c.id, error = %e, "auto-remove");
            }
        }
    }

    /// Resolves `user` against the container's /etc/passwd and /etc/group, read from
    /// its writable layer and then its image layers (`lower`, topmost first). The
    /// supplementary groups hold the primary group too (as Docker has them since
    /// CVE-2022-36109: a group-denied file stays denied) and the `--group-add`
    /// ones, named in the image's /etc/group or by number.
    pub(super) fn resolve_user(
        &self,
        r: &Record,
        lower: &[PathBuf],
        user: &str,
    ) -> ApiResult<user::ExecUser> {
        let mut search = vec![self.paths.writable(&r.id)];
        if self.paths.driver == crate::daemon::paths::Driver::Overlay2 {
            search.extend(lower.iter().cloned());
        }
        let group = read_rootfs_file(&search, "etc/group");
        let mut u = user::resolve(user, &read_rootfs_file(&search, "etc/passwd"), &group)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let mut gids = vec![u.gid];
        for g in r.host_config.group_add.iter().flatten() {
            gids.push(user::group_id(g, &group).map_err(|e| ApiError::invalid(e.to_string()))?);
        }
        for g in gids.into_iter().rev() {
            if !u.additional_gids.contains(&g) {
                u.additional_gids.insert(0, g);
            }
        }
        Ok(u)
    }

    fn build_spec(&self, r: &Record, image: &Image) -> ApiResult<Spec> {
        let dir = self.paths.container_dir(&r.id);
        let mut lower = self.store.lower_dirs(image);
        if lower.is_empty() {
            // overlayfs needs at least one lower directory.
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(|source| Error::Layout {
                id: r.id.clone(),
                path: empty.clone(),
                source,
            })?;
            lower.push(empty);
        }
        let u = self.resolve_user(r, &lower, &r.config.user)?;
        let rotation = crate::daemon::container::logs::rotation(&r.host_config.log_config)?;
        let (limits, _) = crate::daemon::container::limits::memory(
            &r.host_config,
            self.hierarchy.has_swap_limit(),
            self.hierarchy.has_blkio_weight(),
        )?;
        let mut env = process_env(r, &[], &u.home);
        for e in self.link_env(r) {
            let k = e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string();
            if !env
                .iter()
                .any(|x| x.split_once('=').map(|(a, _)| a) == Some(k.as_str()))
            {
                env.push(e);
            }
        }
        // `--init`: berth-shim (static) is bound in read-only and runs as PID 1.
        let init = r.host_config.init.unwrap_or(self.defaults.init);
        let mut args = if init {
            vec![INIT_PATH.to_string(), "--".to_string()]
        } else {
            vec![]
        };
        args.push(r.path.clone());
        args.extend(r.args.iter().cloned());
        let (capabilities, seccomp, no_new_privileges) = self.process_security(&r.host_config)?;
        Ok(Spec {
            id: r.id.clone(),
            rootfs: Overlay {
                lower,
                upper: dir.join("upper"),
                bind: (self.paths.driver == crate::daemon::paths::Driver::Vfs)
                    .then(|| self.paths.rootfs(&r.id)),
                work: dir.join("work"),
                target: dir.join("merged"),
            },
            process: Process {
                args,
                env,
                cwd: if r.config.working_dir.is_empty() {
                    "/".into()
                } else {
                    r.config.working_dir.clone()
                },
                uid: u.uid,
                gid: u.gid,
                additional_gids: u.additional_gids,
                capabilities,
                terminal: r.config.tty,
                open_stdin: r.config.open_stdin,
                console_size: console_size(&r.host_config),
                rlimits: crate::daemon::container::limits::clamp(
                    &self.merged_ulimits(r.host_config.ulimits.as_deref().unwrap_or(&[])),
                )?
                .0,
                seccomp,
                no_new_privileges,
                oom_score_adj: None,
            },
            hostname: r.config.hostname.clone(),
            domainname: r.config.domainname.clone(),
            network: if r.host_config.network_mode == "host" {
                NetworkMode::Host
            } else {
                NetworkMode::Private
            },
            files: ["hostname", "hosts", "resolv.conf"]
                .iter()
                .map(|f| FileBind {
                    source: dir.join(f),
                    destination: format!("/etc/{f}"),
                    readonly: false,
                })
                .chain(init.then(|| {
                    FileBind {
                        source: self
                            .defaults
                            .init_path
                            .clone()
                            .unwrap_or_else(|| self.paths.shim.clone()),
                        destination: INIT_PATH.into(),
                        readonly: true,
                    }
                }))
                .collect(),
            masked_paths: DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            readonly_paths: DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cgroup: CgroupSpec {
                path: self.cgroup_path(r),
                delegated: self.defaults.rootless,
                memory_limit: limits.memory,
                pids_limit: r.host_config.pids_limit.filter(|p| *p > 0),
                memory_reservation: limits.reservation,
                memory_swap: limits.swap,
                blkio_weight: limits.blkio_weight,
                cpu: crate::daemon::container::limits::cpu(&r.host_config)?,
                device_rules: Vec::new(),
                oom_kill_disable: false,
                memory_swappiness: None,
                blkio_weight_device: Vec::new(),
                blkio_throttle: Default::default(),
            },
            log_path: (r.host_config.log_config.kind != "none" && !rotation.cache_disabled)
                .then(|| self.paths.log_path(&r.id)),
            log_remote: crate::daemon::container::logdrivers::remote(r, &self.paths.shim)?,
            log_rotate: rotation.rotate,
            log_compress: rotation.compress,
            held_fds: 0,
            proxies: Vec::new(),
            sidecar: Some(self.paths.shim.with_file_name("berth-sidecar")),
            mounts: Vec::new(),
            readonly_rootfs: false,
            exit_path: self.paths.run_dir(&r.id).join("exit.json"),
            namespaces: Default::default(),
            sysctls: Vec::new(),
            shm_size: None,
            devices: Vec::new(),
            privileged: false,
            writable_cgroups: false,
            cgroup_mounts: Vec::new(),
            userns: self.remapped(&r.host_config).cloned(),
        })
    }

    pub async fn start(self: &Arc<Self>, key: &str) -> ApiResult<Changed> {
        let c = self.get(key)?;
        let _op = c.op.lock().await;
        {
            // A manual start: the policy applies afresh.
            let mut r = c.rec();
            if r.state.status != Status::Running {
                r.manually_stopped = false;
                r.state.restarting = false;
                r.restart_count = 0;
                *c.backoff.lock().unwrap_or_else(|p| p.into_inner()) =
                    crate::daemon::container::record::FIRST_RESTART_DELAY;
            }
        }
        let result = self.start_locked(&c).await;
        // Docker removes an auto-remove container whose start failed, which also
        // answers clients waiting for its removal.
        if result.is_err() && c.rec().host_config.auto_remove && !c.is_running() {
            let _ = self.remove_stopped(&c, true);
        }
        result
    }

    pub(super) async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> ApiResult<Changed> {
        let result = self.start_inner(c).await;
        if result.is_err() {
            // A volume filesystem mounted for this start goes again if nothing else
            // uses it.
            self.release_volumes(&c.snapshot());
            self.unmount_shm(&c.id);
            self.unmount_shm(&c.id);
        }
        result
    }

    async fn start_inner(self: &Arc<Self>, c: &Arc<Container>) -> ApiResult<Changed> {
        let rec = c.snapshot();
        match rec.state.status {
            Status::Running => return Ok(Changed::AlreadyDone),
            Status::Removing | Status::Dead => {
                return Err(ApiError::conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    c.id
                )))
            }
            Status::Created | Status::Exited => {}
        }
        let t0 = std::time::Instant::now();
        let image = self.store.resolve(&rec.image)?;
        super::platform::check_runnable(&image.config)?;
        let mut spec = self.build_spec(&rec, &image)?;
        spec.mounts = self.mount_specs(&rec, &spec.rootfs.lower)?;
        spec.readonly_rootfs = rec
            .host_config
            .other
            .get("ReadonlyRootfs")
            .and_then(|v| v.as_bool())
            == Some(true);
        let ns_fds = self.apply_options(&rec, &mut spec)?;
        let mut prep = self.prepare_network(&rec)?;
        let t1 = t0.elapsed();
        if let Err(e) = self.write_net_files(&rec, &prep) {
            self.abandon_network(prep);
            return Err(e);
        }
        // What this start takes (addresses, ports) is on disk before any process
        // holds it: a berthd that crashes from here on finds it in the record and
        // either gives it to the running container it adopts or frees it.
        {
            let mut r = c.rec();
            r.endpoints = prep.endpoints.clone();
            r.ports = prep.ports.clone();
        }
        if let Err(e) = self.persist(c) {
            self.forget_start(c, prep);
            return Err(e);
        }
        spec.network = prep.mode;
        spec.held_fds = prep.held.len() as u32;
        spec.proxies = std::mem::take(&mut prep.proxies);
        let mut fds = Vec::new();
        // The shim gets its own copies; ours stay for the DNS server.
        let netns = prep.netns.take();
        if let Some(ns) = &netns {
            let dup = ns.try_clone().map_err(|source| Error::PassNamespace {
                id: c.id.clone(),
                source,
            })?;
            fds.push((dup, NETNS_FD));
        }
        fds.extend(ns_fds);
        for (i, fd) in std::mem::take(&mut prep.held).into_iter().enumerate() {
            fds.push((fd, HELD_FDS_START + i as i32));
        }
        let run = self.paths.run_dir(&c.id);
        let spec_json = serde_json::to_vec(&spec).expect("spec serialises");
        let spawned = self
            .spawn_shim(spec_json, false, &run, fds, || {
                let mut st = c.attach_state();
                st.live = true;
                std::mem::take(&mut st.pending)
            })
            .await;
        let (started, monitor) = match spawned {
            Ok(s) => s,
            Err(e) => {
                self.forget_start(c, prep);
                return Err(e);
            }
        };
        tracing::debug!(container = %c.id, net_us = t1.as_micros() as u64, total_us = t0.elapsed().as_micros() as u64, "container started");
        if let Some(error) = started.error {
            self.forget_start(c, prep);
            c.attach_state().live = false;
            let code = started.exit_code.unwrap_or(128) as i64;
            {
                let mut r = c.rec();
                r.state.exit_code = code;
                r.state.error = error.clone();
            }
            self.persist_or_log(c, "a start that failed");
            let _ = std::fs::remove_dir_all(&run);
            let msg = format!("failed to create task for container: {error}");
            return Err(if code == 126 || code == 127 {
                ApiError::invalid(msg)
            } else {
                ApiError::internal(msg)
            });
        }
        let pid = started.pid.unwrap_or(0);
        let pidfd = rustix::process::Pid::from_raw(pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        *c.pidfd.lock().unwrap_or_else(|p| p.into_inner()) = pidfd;
        {
            let mut r = c.rec();
            r.state.status = Status::Running;
            r.state.pid = pid as i64;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.started_at = now_rfc3339();
        }
        c.watch.send_modify(|s| {
            s.running = true;
            s.error.clear();
        });
        if let Err(e) = self.commit_network(c, &prep) {
            tracing::error!(container = %c.id, error = %e, "programming published ports");
        }
        if let Some(sockets) = prep.dns.take() {
            self.serve_dns(&c.id, sockets);
        }
        drop(netns);
        self.persist(c)?;
        self.emit(c, "start", &[]);
        self.stats_baseline(c);
        self.watch_health(c);
        self.watch_exit(c.clone(), monitor);
        Ok(Changed::Yes)
    }

    /// A start that did not happen: its addresses and ports go back, and the
    /// record forgets them.
    fn forget_start(&self, c: &Container, prep: crate::daemon::container::endpoint::NetPrep) {
        self.abandon_network(prep);
        {
            let mut r = c.rec();
            r.endpoints
                .values_mut()
                .for_each(crate::daemon::container::record::Endpoint::clear_live);
            r.ports.clear();
        }
        self.persist_or_log(c, "an abandoned start");
    }

    /// Waits, in the background, for the shim to report the exit.
    fn watch_exit(self: &Arc<Self>, c: Arc<Container>, mut monitor: BufReader<UnixStream>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut line = String::new();
            let exit = match monitor.read_line(&mut line).await {
                Ok(n) if n > 0 => serde_json::from_str::<ExitRecord>(&line).ok(),
                _ => None,
            };
            let exit = exit.or_else(|| me.exit_file(&c.id));
            me.on_exit(&c, exit);
        });
    }

    fn exit_file(&self, id: &str) -> Option<ExitRecord> {
        let b = std::fs::read(self.paths.run_dir(id).join("exit.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Starts a shim on `spec_json` (`--exec` for an exec) in the run directory
    /// `run`, with its monitor and the attaches `attachers` hands over already
    /// connected; returns its start report and the monitor.
    pub(super) async fn spawn_shim(
        &self,
        spec_json: Vec<u8>,
        exec: bool,
        run: &Path,
        fds: Vec<(std::os::fd::OwnedFd, std::os::fd::RawFd)>,
        attachers: impl FnOnce() -> Vec<crate::daemon::container::record::PendingAttach>,
    ) -> ApiResult<(Started, BufReader<UnixStream>)> {
        let launch = crate::daemon::shim::Launch {
            shim_memfd: &self.paths.shim_memfd,
            exec,
            run,
            fds,
        };
        Ok(crate::daemon::shim::spawn(launch, spec_json, attachers).await?)
    }

    /// Registers an attach now (before the client is answered, so that a start
    /// that follows cannot miss it). Before the container starts, the start itself
    /// connects it; while the shim's socket is live, it connects directly.
    pub fn register_attach(&self, key: &str, want: u8) -> ApiResult<AttachSource> {
        let c = self.get(key)?;
        let mut st = c.attach_state();
        if st.live {
            return Ok(AttachSource::Socket(
                self.paths.run_dir(&c.id).join("sock"),
                want,
            ));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        st.pending.push((want, tx));
        Ok(AttachSource::Pending(rx))
    }

    /// Resizes a running container's terminal (a no-op without one).
    pub async fn resize(&self, key: &str, rows: u16, cols: u16) -> ApiResult<()> {
        let c = self.get(key)?;
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        resize_socket(&self.paths.run_dir(&c.id).join("sock"), rows, cols).await
    }

    pub async fn restart(self: &Arc<Self>, key: &str, timeout: Option<i64>) -> ApiResult<()> {
        let c = self.get(key)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, None, timeout).await?;
        self.start_locked(&c).await?;
        self.emit(&c, "restart", &[]);
        Ok(())
    }

    /// Asks the run directory what became of a container's shim.
    async fn probe_shim(&self, id: &str) -> ShimState {
        let run = self.paths.run_dir(id);
        if !run.exists() {
            return ShimState::Gone;
        }
        let alive = crate::daemon::shim::reattach(&run).await;
        match alive {
            Some((pid, monitor)) => ShimState::Alive(pid, monitor),
            None => match self.exit_file(id) {
                Some(exit) => ShimState::Exited(exit),
                None => ShimState::Gone,
            },
        }
    }

    /// Loads every container record at daemon start and makes each agree with
    /// the kernel: a container whose shim answers is running (whatever its record
    /// says: berthd may have died between starting it and writing that down), one
    /// whose shim left an exit record has exited (and goes, with `--rm`), one with
    /// no shim is not running and holds nothing. A removal that was under way is
    /// finished.
    pub async fn restore(self: &Arc<Self>) -> ApiResult<()> {
        let rows = self.store.containers()?;
        let known: std::collections::HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut records = Vec::new();
        for row in rows {
            match serde_json::from_slice::<Record>(&row.data) {
                Ok(r) => records.push(r),
                Err(e) => {
                    tracing::error!(container = %row.id, error = %e, "unreadable container record, skipping");
                }
            }
        }
        // Probe every shim first and claim the addresses and ports of the living
        // ones, before anything is released or restarted.
        let mut probed = Vec::new();
        for rec in records {
            let removing = matches!(rec.state.status, Status::Removing | Status::Dead);
            let c = Arc::new(Container::new(rec));
            self.insert(c.clone());
            let state = self.probe_shim(&c.id).await;
            if let ShimState::Alive(pid, _) = &state {
                let pid = *pid;
                {
                    let mut r = c.rec();
                    if r.state.status != Status::Running {
                        tracing::warn!(container = %c.id, "found running, recorded as {}: adopting it", r.state.status.as_str());
                        r.state.status = Status::Running;
                        r.state.exit_code = 0;
                        r.state.error.clear();
                        r.state.started_at = now_rfc3339();
                    }
                    r.state.pid = pid as i64;
                }
                c.watch.send_modify(|s| s.running = true);
                self.restore_network(&c.snapshot());
            } else if removing {
                // Finished below.
            } else {
                // Not running: whatever the record says it held is not held.
                let mut r = c.rec();
                r.endpoints
                    .values_mut()
                    .for_each(crate::daemon::container::record::Endpoint::clear_live);
                r.ports.clear();
            }
            probed.push((c, state, removing));
        }
        for (c, state, removing) in probed {
            match state {
                ShimState::Alive(pid, monitor) => {
                    self.persist_or_log(&c, "recording a running container at restore");
                    let pidfd = rustix::process::Pid::from_raw(pid).and_then(|p| {
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                    });
                    *c.pidfd.lock().unwrap_or_else(|p| p.into_inner()) = pidfd;
                    c.attach_state().live = true;
                    let rec = c.snapshot();
                    let user_net = rec
                        .endpoints
                        .values()
                        .filter_map(|e| self.net.find(&e.network_id))
                        .any(|n| n.user_defined());
                    if user_net {
                        if let Ok(ns) = std::fs::File::open(format!("/proc/{pid}/ns/net")) {
                            self.start_dns(&c.id, ns.as_fd());
                        }
                    }
                    tracing::info!(container = %c.id, "reattached to running container");
                    self.watch_exit(c, monitor);
                }
                _ if removing => {
                    tracing::info!(container = %c.id, "finishing a removal that was under way");
                    let volumes = c.rec().remove_volumes;
                    if let Err(e) = self.remove_stopped(&c, volumes) {
                        tracing::error!(container = %c.id, error = %e, "finishing a removal");
                    }
                }
                ShimState::Exited(exit) => {
                    let seen = {
                        let r = c.rec();
                        r.state.status == Status::Exited && r.state.finished_at == exit.finished_at
                    };
                    if seen {
                        let _ = std::fs::remove_dir_all(self.paths.run_dir(&c.id));
                        self.settle_stopped(&c);
                    } else {
                        self.on_exit(&c, Some(exit));
                    }
                }
                ShimState::Gone => {
                    if c.is_running() {
                        self.on_exit(&c, None);
                    } else {
                        let _ = std::fs::remove_dir_all(self.paths.run_dir(&c.id));
                        self.settle_stopped(&c);
                    }
                }
            }
        }
        // Port rules of the containers still running (the table was rewritten
        // without them when the networks were set up).
        if let Err(e) = self.net.apply_firewall() {
            tracing::error!(error = %e, "restoring port rules");
        }
        self.restart_at_boot();
        // Directories of containers that have no record: a crash during create.
        if let Ok(entries) = std::fs::read_dir(self.paths.data_root.join("containers")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&name) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }
}
