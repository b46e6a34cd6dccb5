//! `docker exec`: processes that join a running container. Each runs under its own
//! exec shim (`berth-shim --exec`), which enters the container's namespaces and
//! cgroup, relays stdio like a container's shim, and reports the exit.

use crate::daemon::container::record::{Exec, ExecState, PendingAttach, Status};
use crate::daemon::container::start::process_env;
use crate::daemon::container::Containers;
use crate::error::{ApiError, ApiResult};
use berth_api::{ExecConfig, ExecInspect, ExecProcessConfig};
use berth_runtime::shimproto::ExitRecord;
use berth_runtime::spec::{CgroupSpec, ExecSpec, Process};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

impl Containers {
    pub fn exec_create(&self, key: &str, config: ExecConfig) -> ApiResult<String> {
        let c = self.get(key)?;
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(ApiError::invalid("No exec command specified"));
        }
        let id = hex::encode(rand::random::<[u8; 32]>());
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: c.id.clone(),
            config,
            state: Mutex::new(ExecState::default()),
            done: watch::channel(false).0,
        });
        let cmd = exec.config.cmd.clone().unwrap_or_default().join(" ");
        self.execs_mut().insert(id.clone(), exec);
        self.emit(
            &c,
            &format!("exec_create: {cmd}"),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    /// Drops an exec's record (healthcheck probes, once read).
    pub(super) fn exec_forget(&self, id: &str) {
        self.execs_mut().remove(id);
    }

    pub fn exec_get(&self, id: &str) -> ApiResult<Arc<Exec>> {
        self.execs()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    pub fn exec_inspect(&self, id: &str) -> ApiResult<ExecInspect> {
        let e = self.exec_get(id)?;
        let st = e.state().clone();
        let cmd = e.config.cmd.clone().unwrap_or_default();
        Ok(ExecInspect {
            id: e.id.clone(),
            running: st.running,
            exit_code: st.exit_code,
            process_config: ExecProcessConfig {
                tty: e.config.tty,
                entrypoint: cmd.first().cloned().unwrap_or_default(),
                arguments: cmd.iter().skip(1).cloned().collect(),
                privileged: e.config.privileged,
                user: e.config.user.clone(),
            },
            open_stdin: e.config.attach_stdin,
            open_stderr: e.config.attach_stderr,
            open_stdout: e.config.attach_stdout,
            can_remove: !st.running,
            container_id: e.container_id.clone(),
            detach_keys: e.config.detach_keys.clone(),
            pid: st.pid,
        })
    }

    /// The exec's run directory: short, so that its socket fits sun_path.
    pub(super) fn exec_run_dir(&self, id: &str) -> std::path::PathBuf {
        self.paths.exec_root.join(format!("x-{}", &id[..24]))
    }

    /// Starts an exec; `attach` is connected to its stdio before it runs. A failure
    /// to start is recorded on the exec (exit code 126/127 and Docker's message) as
    /// well as returned.
    pub async fn exec_start(
        self: &Arc<Self>,
        exec: &Arc<Exec>,
        attach: Option<PendingAttach>,
    ) -> ApiResult<()> {
        {
            let mut st = exec.state();
            if st.started {
                return Err(ApiError::conflict(format!(
                    "Exec {} has already been started",
                    exec.id
                )));
            }
            st.started = true;
        }
        let result = self.exec_launch(exec, attach).await;
        if let Err(e) = &result {
            // A failure before the shim could say which (126 or 127) is a 126.
            if !*exec.done.borrow() {
                exec.finish(126, e.message.clone());
            }
        }
        result
    }

    async fn exec_launch(
        self: &Arc<Self>,
        exec: &Arc<Exec>,
        attach: Option<PendingAttach>,
    ) -> ApiResult<()> {
        let c = self.get(&exec.container_id)?;
        let rec = c.snapshot();
        if rec.state.status != Status::Running {
            return Err(ApiError::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let image = self.store.resolve(&rec.image)?;
        let lower = self.store.lower_dirs(&image);
        let cfg = &exec.config;
        let user = if cfg.user.is_empty() {
            &rec.config.user
        } else {
            &cfg.user
        };
        let u = self.resolve_user(&rec, &lower, user)?;
        let cwd = [cfg.working_dir.as_str(), rec.config.working_dir.as_str()]
            .into_iter()
            .find(|d| !d.is_empty())
            .unwrap_or("/")
            .to_string();
        let console_size = cfg
            .console_size
            .as_deref()
            .and_then(|s| Some((*s.first()?, *s.get(1)?)))
            .filter(|(r, c)| *r > 0 && *c > 0);
        let rlimits = crate::daemon::container::limits::clamp(
            rec.host_config.ulimits.as_deref().unwrap_or(&[]),
        )?
        .0;
        // The container's filter, compiled for the container's capabilities, applies
        // to every exec, privileged or not (as runc applies the container's).
        let (container_caps, seccomp, no_new_privileges) =
            self.process_security(&rec.host_config)?;
        let spec = ExecSpec {
            id: exec.id.clone(),
            container_pid: rec.state.pid as i32,
            cgroup: CgroupSpec {
                path: self.cgroup_path(&rec),
                delegated: self.defaults.rootless,
                ..Default::default()
            },
            process: Process {
                args: cfg.cmd.clone().unwrap_or_default(),
                env: process_env(&rec, cfg.env.as_deref().unwrap_or(&[]), &u.home),
                cwd,
                uid: u.uid,
                gid: u.gid,
                additional_gids: u.additional_gids,
                // --privileged: every capability; the container's mounts and device
                // rules stay what they are, as with Docker.
                capabilities: if cfg.privileged {
                    berth_runtime::caps::all(super::options::cap_last_cap())
                } else {
                    container_caps
                },
                terminal: cfg.tty,
                open_stdin: cfg.attach_stdin,
                console_size,
                rlimits,
                seccomp,
                no_new_privileges,
                oom_score_adj: None,
            },
            exit_path: self.exec_run_dir(&exec.id).join("exit.json"),
        };
        let run = self.exec_run_dir(&exec.id);
        let json = serde_json::to_vec(&spec).expect("spec serialises");
        let (started, mut monitor) = self
            .spawn_shim(json, true, &run, Vec::new(), || {
                attach.into_iter().collect()
            })
            .await?;
        if let Some(error) = started.error {
            let _ = std::fs::remove_dir_all(&run);
            let message = format!("OCI runtime exec failed: {error}");
            exec.finish(started.exit_code.unwrap_or(126) as i64, message.clone());
            return Err(ApiError::invalid(message));
        }
        {
            let mut st = exec.state();
            st.running = true;
            st.pid = started.pid.unwrap_or(0) as i64;
        }
        let cmd = cfg.cmd.clone().unwrap_or_default().join(" ");
        self.emit(
            &c,
            &format!("exec_start: {cmd}"),
            &[("execID", exec.id.clone())],
        );
        let exec = exec.clone();
        let me = self.clone();
        tokio::spawn(async move {
            let mut line = String::new();
            let code = match monitor.read_line(&mut line).await {
                Ok(n) if n > 0 => {
                    serde_json::from_str::<ExitRecord>(&line).map_or(255, |r| r.exit_code as i64)
                }
                _ => std::fs::read(run.join("exit.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<ExitRecord>(&b).ok())
                    .map_or(255, |r| r.exit_code as i64),
            };
            let _ = std::fs::remove_dir_all(&run);
            exec.finish(code, String::new());
            if let Ok(c) = me.get(&exec.container_id) {
                me.emit(
                    &c,
                    "exec_die",
                    &[("execID", exec.id.clone()), ("exitCode", code.to_string())],
                );
            }
        });
        Ok(())
    }

    /// Resizes an exec's terminal.
    pub async fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> ApiResult<()> {
        let e = self.exec_get(id)?;
        if !e.state().running {
            return Err(ApiError::conflict(format!("Exec {id} is not running")));
        }
        crate::daemon::container::start::resize_socket(
            &self.exec_run_dir(id).join("sock"),
            rows,
            cols,
        )
        .await
    }
}
