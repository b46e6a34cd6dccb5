//! Stopping: kill, stop, wait, remove, and what happens when a container exits.

use super::record::{Container, Snapshot, Status};
use super::signal;
use super::Containers;
use super::{Changed, WaitCondition};
use crate::daemon::time::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use berth_api::{WaitError, WaitResponse};
use std::sync::Arc;
use std::time::Duration;

impl Containers {
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
            let path = self.cgroup_path(&c.rec());
            self.hierarchy
                .freeze(&path, false)
                .map_err(|source| super::Error::Freeze {
                    id: c.id.clone(),
                    pause: false,
                    source,
                })?;
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
        self.persist_or_log(&c, "marking a manual stop");
        let changed = self.stop_locked(&c, sig, timeout).await?;
        if changed == Changed::Yes {
            self.emit(&c, "stop", &[]);
        }
        Ok(changed)
    }

    /// How long the daemon waits at shutdown for its running containers to stop,
    /// as dockerd reckons it: `shutdown-timeout` at least, else the longest stop
    /// timeout of a container plus 5 seconds of grace; None: no limit (a timeout
    /// of -1 anywhere).
    pub fn shutdown_deadline(&self, minimum: i64) -> Option<std::time::Duration> {
        let timeouts: Vec<i64> = self
            .all()
            .iter()
            .filter(|c| c.is_running())
            .map(|c| c.rec().config.stop_timeout.unwrap_or(10))
            .collect();
        shutdown_deadline(minimum, &timeouts)
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
        // One removal at a time: another one meanwhile is told so at once, as
        // Docker does; this one clears the mark whatever its outcome.
        if c.removing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(ApiError::conflict(format!(
                "removal of container {key} is already in progress"
            )));
        }
        let result = self.remove_marked(&c, key, force, volumes).await;
        c.removing.store(false, std::sync::atomic::Ordering::SeqCst);
        result
    }

    async fn remove_marked(
        &self,
        c: &Arc<Container>,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> ApiResult<()> {
        let _op = c.op.lock().await;
        // Gone while this one waited for the lock (an auto-remove finished).
        if self.get(&c.id).is_err() {
            return Err(ApiError::not_found(format!("No such container: {key}")));
        }
        if c.is_running() {
            if !force {
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    c.name()
                )));
            }
            let mut rx = c.watch.subscribe();
            self.signal(c, 9)?;
            let _ = rx.wait_for(|s| !s.running).await;
        }
        self.shim_gone(&c.id).await;
        self.remove_stopped(c, volumes)
    }

    /// Whether a shim answers on the container's socket: the kernel's word on
    /// whether it runs, whatever the record says.
    pub(super) fn shim_alive(&self, id: &str) -> bool {
        std::os::unix::net::UnixStream::connect(self.paths.run_dir(id).join("sock")).is_ok()
    }

    /// After an exit is reported the shim still removes the cgroup and its
    /// socket before it exits: a removal right behind the exit waits for that
    /// (briefly) rather than finding the shim alive.
    pub(super) async fn shim_gone(&self, id: &str) {
        for _ in 0..300 {
            if !self.shim_alive(id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
        let before = {
            let mut r = c.rec();
            let before = r.state.status;
            r.state.status = Status::Removing;
            r.remove_volumes |= volumes;
            before
        };
        if let Err(e) = self.persist(c) {
            // Not under way after all: a later removal may try again.
            c.rec().state.status = before;
            return Err(e);
        }
        // Attaches waiting for a start that will not come end now.
        c.attach_state().pending.clear();
        let _ = std::fs::remove_dir_all(self.paths.run_dir(&c.id));
        // A shareable /dev/shm still mounted (a crash before the exit was seen)
        // must not be emptied through the mount and then block the removal.
        self.unmount_shm(&c.id);
        let dir = self.paths.container_dir(&c.id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                c.rec().state.status = Status::Dead;
                return Err(super::Error::Remove {
                    id: c.id.clone(),
                    path: dir,
                    source: e,
                }
                .into());
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
        self.unmount_shm(&c.id);
        self.persist_or_log(c, "recording an exit");
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
                if c.removing.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return; // a client's removal is under way
                }
                let _op = c.op.lock().await;
                me.shim_gone(&c.id).await;
                // --rm takes the anonymous volumes too.
                if !c.is_running() {
                    if let Err(e) = me.remove_stopped(&c, true) {
                        tracing::error!(container = %c.id, error = %e, "auto-remove");
                    }
                }
                c.removing.store(false, std::sync::atomic::Ordering::SeqCst);
            });
        }
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
        Err(source) => Err(super::Error::Signal {
            id: c.id.clone(),
            signo,
            source,
        }
        .into()),
    }
}

/// dockerd's shutdown deadline from `shutdown-timeout` and the containers' stop
/// timeouts (see [`Containers::shutdown_deadline`]).
fn shutdown_deadline(minimum: i64, stop_timeouts: &[i64]) -> Option<std::time::Duration> {
    const GRACE: i64 = 5;
    if minimum < 0 || stop_timeouts.iter().any(|t| *t < 0) {
        return None;
    }
    let longest = stop_timeouts.iter().map(|t| t + GRACE).max().unwrap_or(0);
    Some(std::time::Duration::from_secs(minimum.max(longest) as u64))
}

#[cfg(test)]
mod tests {
    use super::shutdown_deadline;
    use std::time::Duration;

    #[test]
    fn the_shutdown_deadline_is_dockerds() {
        assert_eq!(shutdown_deadline(15, &[]), Some(Duration::from_secs(15)));
        assert_eq!(shutdown_deadline(15, &[10]), Some(Duration::from_secs(15)));
        assert_eq!(
            shutdown_deadline(2, &[10, 3]),
            Some(Duration::from_secs(15))
        );
        assert_eq!(shutdown_deadline(40, &[30]), Some(Duration::from_secs(40)));
        assert_eq!(shutdown_deadline(-1, &[10]), None);
        assert_eq!(shutdown_deadline(15, &[10, -1]), None);
    }
}
