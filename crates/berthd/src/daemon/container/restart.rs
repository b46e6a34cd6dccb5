//! Restart policies: `no`, `on-failure[:N]`, `always`, `unless-stopped`, with
//! Docker's back-off (100 ms, doubling, at most a minute, back to 100 ms after 10 s
//! of running), a manual stop respected, and the policies applied when berthd starts.

use crate::daemon::container::record::{Container, Status};
use crate::daemon::container::Containers;
use crate::daemon::time::parse_time;
use crate::error::{ApiError, ApiResult};
use berth_api::HostConfig;
use std::sync::Arc;
use std::time::Duration;

use crate::daemon::container::record::FIRST_RESTART_DELAY as FIRST_DELAY;
const MAX_DELAY: Duration = Duration::from_secs(60);
const RESET_AFTER: Duration = Duration::from_secs(10);

/// Checks a policy at create, with Docker's messages.
pub(super) fn validate(hc: &HostConfig) -> ApiResult<()> {
    let p = &hc.restart_policy;
    match p.name.as_str() {
        "" | "no" | "always" | "unless-stopped" => {
            if p.maximum_retry_count != 0 {
                return Err(ApiError::invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
        }
        "on-failure" => {
            if p.maximum_retry_count < 0 {
                return Err(ApiError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "invalid restart policy: unknown policy '{other}'"
            )))
        }
    }
    if hc.auto_remove && !matches!(p.name.as_str(), "" | "no") {
        return Err(ApiError::invalid(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(())
}

impl Containers {
    /// After an exit: schedules a restart when the policy asks for one.
    pub(super) fn maybe_restart(self: &Arc<Self>, c: &Arc<Container>) {
        if self.shutting_down() {
            return;
        }
        let delay = {
            let mut r = c.rec();
            let p = &r.host_config.restart_policy;
            let again = match p.name.as_str() {
                "always" | "unless-stopped" => !r.manually_stopped,
                "on-failure" => {
                    r.state.exit_code != 0
                        && !r.manually_stopped
                        && (p.maximum_retry_count == 0 || r.restart_count < p.maximum_retry_count)
                }
                _ => false,
            };
            if !again {
                return;
            }
            let ran = match (
                parse_time(&r.state.started_at),
                parse_time(&r.state.finished_at),
            ) {
                (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
                _ => Duration::ZERO,
            };
            let mut backoff = c.backoff.lock().unwrap_or_else(|p| p.into_inner());
            if ran >= RESET_AFTER {
                *backoff = FIRST_DELAY;
            }
            let delay = *backoff;
            *backoff = (*backoff * 2).min(MAX_DELAY);
            r.state.restarting = true;
            delay
        };
        self.persist_or_log(c, "scheduling a restart");
        let me = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _op = c.op.lock().await;
            {
                let mut r = c.rec();
                // A stop or a removal during the back-off cancels the restart.
                if !r.state.restarting || r.manually_stopped || r.state.status != Status::Exited {
                    r.state.restarting = false;
                    return;
                }
                r.state.restarting = false;
                r.restart_count += 1;
            }
            if let Err(e) = me.start_locked(&c).await {
                tracing::warn!(container = %c.id, error = %e.message, "restart by policy failed");
                me.persist_or_log(&c, "a failed restart");
            }
        });
    }

    /// At daemon start: `always` containers start again, and `unless-stopped` ones
    /// that nobody stopped.
    pub(super) fn restart_at_boot(self: &Arc<Self>) {
        for c in self.all() {
            let start = {
                let r = c.rec();
                r.state.status != Status::Running
                    && match r.host_config.restart_policy.name.as_str() {
                        "always" => true,
                        "unless-stopped" => !r.manually_stopped,
                        _ => false,
                    }
            };
            if start {
                let me = self.clone();
                tokio::spawn(async move {
                    let _op = c.op.lock().await;
                    if let Err(e) = me.start_locked(&c).await {
                        tracing::warn!(container = %c.id, error = %e.message, "starting by restart policy");
                    }
                });
            }
        }
    }
}
