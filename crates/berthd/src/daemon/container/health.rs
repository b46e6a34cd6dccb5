//! Healthchecks: the image's HEALTHCHECK or `--health-*`, probed by an exec every
//! interval; `starting`, `healthy`, `unhealthy` in State.Health with the last five
//! results, `health_status` events.

use crate::daemon::container::record::{Container, Health, HealthResult};
use crate::daemon::container::Containers;
use crate::daemon::time::now_rfc3339;
use berth_api::ExecConfig;
use berth_runtime::shimproto::{WANT_STDERR, WANT_STDOUT};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
const KEEP_RESULTS: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// `Config.Healthcheck` (durations in nanoseconds).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Check {
    #[serde(default)]
    test: Vec<String>,
    #[serde(default)]
    interval: i64,
    #[serde(default)]
    timeout: i64,
    #[serde(default)]
    start_period: i64,
    #[serde(default)]
    retries: i64,
}

fn dur(ns: i64, default: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns as u64)
    } else {
        default
    }
}

impl Check {
    /// The probe's command, or None for "no healthcheck".
    fn command(&self) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") => Some(self.test[1..].to_vec()).filter(|c| !c.is_empty()),
            Some("CMD-SHELL") => Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                self.test[1..].join(" "),
            ]),
            _ => None,
        }
    }
}

impl Containers {
    /// Starts probing a container that just started, if it has a healthcheck.
    pub(super) fn watch_health(self: &Arc<Self>, c: &Arc<Container>) {
        let (check, started_at) = {
            let r = c.rec();
            let check: Option<Check> = r
                .config
                .healthcheck
                .clone()
                .and_then(|v| serde_json::from_value(v).ok());
            (check, r.state.started_at.clone())
        };
        let Some(check) = check else { return };
        let Some(cmd) = check.command() else { return };
        c.rec().state.health = Some(Health {
            status: "starting".into(),
            ..Default::default()
        });
        let me = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let interval = dur(check.interval, DEFAULT_INTERVAL);
            let timeout = dur(check.timeout, DEFAULT_TIMEOUT);
            let start_period = dur(check.start_period, Duration::ZERO);
            let retries = if check.retries > 0 {
                check.retries
            } else {
                DEFAULT_RETRIES
            };
            let began = std::time::Instant::now();
            loop {
                tokio::time::sleep(interval).await;
                // This run of the container is over: its probes end with it.
                if !c.is_running() || c.rec().state.started_at != started_at {
                    return;
                }
                let result = me.probe(&c, &cmd, timeout).await;
                let in_start_period = began.elapsed() < start_period;
                let changed = {
                    let mut r = c.rec();
                    let h = r.state.health.get_or_insert_with(Health::default);
                    let before = h.status.clone();
                    if result.exit_code == 0 {
                        h.failing_streak = 0;
                        h.status = "healthy".into();
                    } else if !in_start_period {
                        h.failing_streak += 1;
                        if h.failing_streak >= retries {
                            h.status = "unhealthy".into();
                        }
                    }
                    h.log.push(result);
                    if h.log.len() > KEEP_RESULTS {
                        h.log.remove(0);
                    }
                    (h.status != before).then(|| h.status.clone())
                };
                me.persist_or_log(&c, "a health check");
                if let Some(status) = changed {
                    me.emit(&c, &format!("health_status: {status}"), &[]);
                }
            }
        });
    }

    /// Runs the probe as an exec; a probe that outlives its timeout is killed.
    async fn probe(
        self: &Arc<Self>,
        c: &Arc<Container>,
        cmd: &[String],
        timeout: Duration,
    ) -> HealthResult {
        let start = now_rfc3339();
        let failed = |start: String, output: String| HealthResult {
            start,
            end: now_rfc3339(),
            exit_code: -1,
            output,
        };
        let config = ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let id = match self.exec_create(&c.id, config) {
            Ok(id) => id,
            Err(e) => return failed(start, e.message),
        };
        let Ok(exec) = self.exec_get(&id) else {
            return failed(start, "exec vanished".into());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(e) = self
            .exec_start(&exec, Some((WANT_STDOUT | WANT_STDERR, tx)))
            .await
        {
            return failed(start, e.message);
        }
        let collect = async {
            let mut out = Vec::new();
            if let Ok(mut s) = rx.await {
                // Docker's framing: an 8-byte header, then the payload.
                let mut frames = Vec::new();
                let _ = s.read_to_end(&mut frames).await;
                let mut at = 0;
                while frames.len() >= at + 8 {
                    let len = u32::from_be_bytes([
                        frames[at + 4],
                        frames[at + 5],
                        frames[at + 6],
                        frames[at + 7],
                    ]) as usize;
                    let end = (at + 8 + len).min(frames.len());
                    out.extend_from_slice(&frames[at + 8..end]);
                    at = end;
                }
            }
            let mut done = exec.done.subscribe();
            let _ = done.wait_for(|d| *d).await;
            out
        };
        let outcome = tokio::time::timeout(timeout, collect).await;
        self.exec_forget(&id);
        match outcome {
            Ok(out) => {
                let mut output =
                    String::from_utf8_lossy(&out[..out.len().min(MAX_OUTPUT)]).into_owned();
                if output.is_empty() {
                    output = exec.state().error.clone();
                }
                HealthResult {
                    start,
                    end: now_rfc3339(),
                    exit_code: exec.state().exit_code.unwrap_or(-1),
                    output,
                }
            }
            Err(_) => {
                let pid = exec.state().pid as i32;
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
                failed(
                    start,
                    format!("Health check exceeded timeout ({timeout:?})"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_of_each_form() {
        let c = |t: &[&str]| {
            Check {
                test: t.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }
            .command()
        };
        assert_eq!(c(&["CMD", "true"]), Some(vec!["true".to_string()]));
        assert_eq!(
            c(&["CMD-SHELL", "test -f /x"]),
            Some(vec!["/bin/sh".into(), "-c".into(), "test -f /x".into()])
        );
        assert_eq!(c(&["NONE"]), None);
        assert_eq!(c(&[]), None);
    }
}
