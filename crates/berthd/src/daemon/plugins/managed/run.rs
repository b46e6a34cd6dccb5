//! Running a managed plugin: its container is described as moby describes it
//! (plugin/v2 InitSpec: Docker's default container with the plugin's
//! capabilities, mounts, devices and namespaces added), started by a shim like
//! any container, and watched: an exit berth did not ask for restarts it.
//!
//! Going past moby: the plugin's process also gets Docker's default seccomp
//! profile (compiled for its capabilities), which moby leaves off for plugins.

use super::propagation::{share, unshare};
use super::record::{Plugin, Record, Running};
use super::Managed;
use crate::error::{ApiError, ApiResult};
use berth_runtime::shimproto::ExitRecord;
use berth_runtime::spec::{
    CgroupSpec, Device, FileBind, MountKind, MountSpec, Namespaces, NetworkMode, NsSource, Overlay,
    Process, Spec, DEFAULT_MASKED_PATHS, DEFAULT_PATH, DEFAULT_READONLY_PATHS,
};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;

/// Where the plugin finds its socket directory, as in Docker.
const SOCKET_DIR_INSIDE: &str = "/run/docker/plugins";

/// How long a new plugin has to start serving its socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a plugin has to exit after SIGTERM before SIGKILL (moby's).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Managed {
    /// The shim's run directory: short, so that socket paths fit sun_path.
    pub(super) fn run_dir(&self, id: &str) -> PathBuf {
        self.run_root.join(&id[..12])
    }

    /// The directory bound at /run/docker/plugins inside the plugin.
    pub(super) fn socket_dir(&self, id: &str) -> PathBuf {
        self.run_root.join(format!("{}.s", &id[..12]))
    }

    fn spec(&self, id: &str, rec: &Record) -> ApiResult<Spec> {
        let dir = self.dir(id);
        let c = &rec.plugin.config;
        let s = &rec.plugin.settings;
        let mut caps = berth_runtime::caps::docker_default();
        for name in &c.linux.capabilities {
            let bit = berth_runtime::caps::from_name(name)
                .ok_or_else(|| ApiError::invalid(format!("unknown capability {name:?}")))?;
            if !caps.contains(&bit) {
                caps.push(bit);
            }
        }
        let seccomp = if crate::daemon::container::security::kernel_has_seccomp() {
            self.filters
                .get(&crate::daemon::container::security::Seccomp::Default, &caps)?
                .map(|f| (*f).clone())
        } else {
            None
        };
        let mut mounts = Vec::new();
        if !c.propagated_mount.is_empty() {
            mounts.push(MountSpec {
                destination: c.propagated_mount.clone(),
                kind: MountKind::Bind {
                    source: dir.join("propagated-mount"),
                    file: false,
                    propagation: Some("rshared".into()),
                    nonrecursive: false,
                    idmap: false,
                    nofollow: false,
                },
                readonly: false,
            });
        }
        mounts.push(MountSpec {
            destination: SOCKET_DIR_INSIDE.into(),
            kind: MountKind::Bind {
                source: self.socket_dir(id),
                file: false,
                propagation: None,
                nonrecursive: false,
                idmap: false,
                nofollow: false,
            },
            readonly: false,
        });
        for m in &s.mounts {
            let Some(source) = m.source.clone() else {
                return Err(ApiError::invalid(format!(
                    "plugin {}: mount {:?} has no source",
                    rec.plugin.name, m.destination
                )));
            };
            let readonly = m.options.iter().any(|o| o == "ro");
            let kind = match m.kind.as_str() {
                "bind" | "" => {
                    let meta = std::fs::metadata(&source).map_err(|e| {
                        ApiError::invalid(format!(
                            "plugin {}: mount source {source}: {e}",
                            rec.plugin.name
                        ))
                    })?;
                    MountKind::Bind {
                        source: PathBuf::from(&source),
                        file: !meta.is_dir(),
                        propagation: m
                            .options
                            .iter()
                            .find(|o| {
                                o.ends_with("shared")
                                    || o.ends_with("slave")
                                    || o.ends_with("private")
                            })
                            .cloned(),
                        nonrecursive: m.options.iter().any(|o| o == "bind"),
                        idmap: false,
                        nofollow: false,
                    }
                }
                "tmpfs" => MountKind::Tmpfs {
                    options: String::new(),
                    exec: false,
                },
                other => {
                    return Err(ApiError::invalid(format!(
                        "plugin {}: mount type {other:?} is not supported",
                        rec.plugin.name
                    )))
                }
            };
            mounts.push(MountSpec {
                destination: m.destination.clone(),
                kind,
                readonly,
            });
        }
        let mut cgroup = CgroupSpec {
            path: self
                .cgroup_parent
                .as_ref()
                .map(|p| format!("{}/plugin-{id}", p.trim_matches('/')))
                .unwrap_or_default(),
            delegated: self.delegated,
            ..Default::default()
        };
        if c.linux.allow_all_devices {
            cgroup.device_rules.push("a".into());
        }
        let mut devices = Vec::new();
        for d in &s.devices {
            let Some(path) = &d.path else { continue };
            let dev = std::fs::symlink_metadata(path)
                .ok()
                .as_ref()
                .and_then(Device::from_metadata)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "plugin {}: {path} is not a device",
                        rec.plugin.name
                    ))
                })?;
            cgroup
                .device_rules
                .push(format!("{} {}:{} rwm", dev.kind, dev.major, dev.minor));
            devices.push(Device {
                path: path.clone(),
                ..dev
            });
        }
        let mut env = vec![format!("PATH={DEFAULT_PATH}")];
        env.extend(s.env.iter().cloned());
        let mut args = c.entrypoint.clone();
        args.extend(s.args.iter().cloned());
        let networked = !c.network.kind.is_empty();
        Ok(Spec {
            id: id.to_string(),
            rootfs: Overlay {
                lower: vec![dir.join("rootfs")],
                upper: dir.join("upper"),
                work: dir.join("work"),
                target: dir.join("root"),
                bind: Some(dir.join("rootfs")),
            },
            process: Process {
                args,
                env,
                cwd: if c.work_dir.is_empty() {
                    "/".into()
                } else {
                    c.work_dir.clone()
                },
                uid: c.user.uid,
                gid: c.user.gid,
                additional_gids: Vec::new(),
                capabilities: caps,
                terminal: false,
                open_stdin: false,
                console_size: None,
                rlimits: Vec::new(),
                seccomp,
                no_new_privileges: false,
                oom_score_adj: None,
            },
            hostname: id[..12].to_string(),
            domainname: String::new(),
            network: if c.network.kind == "host" {
                NetworkMode::Host
            } else {
                NetworkMode::Private
            },
            // moby binds the host's /etc/hosts and /etc/resolv.conf, read-only,
            // into a plugin that declares a network.
            files: if networked {
                ["hosts", "resolv.conf"]
                    .iter()
                    .map(|f| FileBind {
                        source: PathBuf::from(format!("/etc/{f}")),
                        destination: format!("/etc/{f}"),
                        readonly: true,
                    })
                    .filter(|f| f.source.exists())
                    .collect()
            } else {
                Vec::new()
            },
            mounts,
            readonly_rootfs: false,
            masked_paths: DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            readonly_paths: DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cgroup,
            log_path: Some(dir.join("plugin.log")),
            log_rotate: Some((1 << 20, 2)),
            log_compress: false,
            log_remote: None,
            held_fds: 0,
            proxies: Vec::new(),
            sidecar: None,
            exit_path: self.run_dir(id).join("exit.json"),
            namespaces: Namespaces {
                pid: if c.pid_host {
                    NsSource::Host
                } else {
                    NsSource::Private
                },
                ipc: if c.ipc_host {
                    NsSource::Host
                } else {
                    NsSource::Private
                },
                ..Default::default()
            },
            sysctls: Vec::new(),
            shm_size: None,
            devices,
            privileged: false,
            writable_cgroups: false,
            cgroup_mounts: Vec::new(),
            userns: None,
        })
    }

    /// Starts plugin `p` and waits until it serves its socket.
    pub(super) async fn start(self: &Arc<Self>, p: &Arc<Plugin>) -> ApiResult<()> {
        let rec = p.rec().clone();
        let spec = self.spec(&p.id, &rec)?;
        let dir = self.dir(&p.id);
        std::fs::create_dir_all(dir.join("root"))
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
        if !rec.plugin.config.propagated_mount.is_empty() {
            share(&dir.join("propagated-mount"))?;
        }
        let run = self.run_dir(&p.id);
        let socket = self
            .socket_dir(&p.id)
            .join(&rec.plugin.config.interface.socket);
        let launch = crate::daemon::shim::Launch {
            shim_memfd: &self.shim_memfd,
            exec: false,
            run: &run,
            fds: Vec::new(),
        };
        let json = serde_json::to_vec(&spec).expect("spec serialises");
        let sockets = self.socket_dir(&p.id);
        let _ = std::fs::remove_dir_all(&sockets);
        std::fs::create_dir_all(&sockets)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", sockets.display())))?;
        let (started, monitor) = crate::daemon::shim::spawn(launch, json, Vec::new).await?;
        if let Some(error) = started.error {
            let _ = std::fs::remove_dir_all(&run);
            return Err(ApiError::internal(format!(
                "starting plugin {}: {error}",
                rec.plugin.name
            )));
        }
        let pid = started.pid.unwrap_or(0);
        self.watch(p, pid, monitor)?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            // The socket itself, never a link the plugin put in its place.
            if crate::daemon::plugins::legacy::connect_nofollow(&socket).is_ok() {
                return Ok(());
            }
            let exited = p
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .is_none_or(|r| *r.exited.borrow());
            if std::fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_symlink()) {
                self.stop(p).await;
                return Err(ApiError::internal(format!(
                    "plugin {} put a symbolic link where its socket {} belongs: refused",
                    rec.plugin.name, rec.plugin.config.interface.socket
                )));
            }
            if exited || tokio::time::Instant::now() >= deadline {
                self.stop(p).await;
                return Err(ApiError::internal(format!(
                    "plugin {} did not serve {} {}: {}",
                    rec.plugin.name,
                    rec.plugin.config.interface.socket,
                    if exited {
                        "before it exited"
                    } else {
                        "within 15 seconds"
                    },
                    log_tail(&dir.join("plugin.log"))
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Adopts the shim a previous berthd left running for `p`.
    pub(super) async fn adopt(self: &Arc<Self>, p: &Arc<Plugin>) -> bool {
        let Some((pid, monitor)) = crate::daemon::shim::reattach(&self.run_dir(&p.id)).await else {
            return false;
        };
        match self.watch(p, pid, monitor) {
            Ok(()) => {
                tracing::info!(plugin = %p.name(), "reattached to a running plugin");
                true
            }
            Err(_) => false,
        }
    }

    /// Records the running process and waits, in the background, for its exit.
    fn watch(
        self: &Arc<Self>,
        p: &Arc<Plugin>,
        pid: i32,
        mut monitor: BufReader<UnixStream>,
    ) -> ApiResult<()> {
        let pidfd = rustix::process::Pid::from_raw(pid)
            .and_then(|pid| {
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            })
            .ok_or_else(|| ApiError::internal(format!("plugin {} has no process", p.name())))?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        *p.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(Running {
            pid,
            pidfd,
            exited: rx,
        });
        let me = self.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let mut line = String::new();
            let _ = monitor.read_line(&mut line).await;
            let code = serde_json::from_str::<ExitRecord>(&line).map_or(-1, |e| e.exit_code);
            let _ = tx.send(true);
            // Only the exit of the process this watch started counts.
            {
                let mut r = p.running.lock().unwrap_or_else(|p| p.into_inner());
                if r.as_ref().is_some_and(|r| *r.exited.borrow()) {
                    *r = None;
                }
            }
            if !p.rec().plugin.enabled || me.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            tracing::warn!(plugin = %p.name(), exit_code = code, "plugin exited: restarting it");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _op = me.ops.lock().await;
            if !p.rec().plugin.enabled || me.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = me.start(&p).await {
                tracing::error!(plugin = %p.name(), error = %e, "restarting a plugin: it stays disabled");
                p.rec().plugin.enabled = false;
                let _ = me.save(&p);
            }
        });
        Ok(())
    }

    /// Stops plugin `p`'s process if it runs: SIGTERM, then SIGKILL.
    pub(super) async fn stop(&self, p: &Plugin) {
        let Some((mut exited, sent)) = ({
            let r = p.running.lock().unwrap_or_else(|p| p.into_inner());
            r.as_ref().map(|r| {
                // An init that does not catch SIGTERM never dies of it (the
                // kernel drops it): no point waiting.
                let signal = if ignores_term(r.pid) {
                    rustix::process::Signal::KILL
                } else {
                    rustix::process::Signal::TERM
                };
                (
                    r.exited.clone(),
                    rustix::process::pidfd_send_signal(&r.pidfd, signal),
                )
            })
        }) else {
            return;
        };
        if sent.is_ok()
            && tokio::time::timeout(STOP_TIMEOUT, exited.wait_for(|e| *e))
                .await
                .is_err()
        {
            if let Some(r) = p.running.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                let _ = rustix::process::pidfd_send_signal(&r.pidfd, rustix::process::Signal::KILL);
            }
        }
        let _ = exited.wait_for(|e| *e).await;
        // The shim removes its cgroup and socket after reporting the exit.
        let run = self.run_dir(&p.id);
        for _ in 0..300 {
            if !crate::daemon::shim::alive(&run) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        *p.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = std::fs::remove_dir_all(&run);
        let _ = std::fs::remove_dir_all(self.socket_dir(&p.id));
        unshare(&self.dir(&p.id).join("propagated-mount"));
    }
}

/// Whether process `pid` is its PID namespace's init and does not catch
/// SIGTERM (`NSpid` ends in 1, bit 14 of `SigCgt` clear).
fn ignores_term(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let is_init = field("NSpid:").is_some_and(|v| v.split_whitespace().last() == Some("1"));
    let caught = field("SigCgt:")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .is_some_and(|m| m & (1 << 14) != 0);
    is_init && !caught
}

/// The last lines a plugin wrote (its json-file log), for an error message.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["log"].as_str().map(|s| s.trim_end().to_string()))
        .collect();
    if lines.is_empty() {
        return "it wrote nothing".into();
    }
    let start = lines.len().saturating_sub(5);
    format!("its last output: {}", lines[start..].join(" | "))
}
