//! `--ulimit`: Docker's names, checked, and clamped to the daemon's own hard limits.
//! The shim inherits berthd's limits and cannot raise a hard limit (no
//! CAP_SYS_RESOURCE is assumed), so asking for more would only fail at start.

use crate::error::{ApiError, ApiResult};
use berth_api::Ulimit;
use berth_runtime::spec::{Rlimit, ULIMIT_NAMES};
use rustix::process::Resource;

fn resource(name: &str) -> Option<Resource> {
    Some(match name {
        "core" => Resource::Core,
        "cpu" => Resource::Cpu,
        "data" => Resource::Data,
        "fsize" => Resource::Fsize,
        "locks" => Resource::Locks,
        "memlock" => Resource::Memlock,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "nofile" => Resource::Nofile,
        "nproc" => Resource::Nproc,
        "rss" => Resource::Rss,
        "rtprio" => Resource::Rtprio,
        "rttime" => Resource::Rttime,
        "sigpending" => Resource::Sigpending,
        "stack" => Resource::Stack,
        _ => return None,
    })
}

/// -1 (and any negative value) is Docker's "unlimited".
fn limit(v: i64) -> u64 {
    if v < 0 {
        u64::MAX
    } else {
        v as u64
    }
}

/// Checks and clamps; returns the limits to apply and one warning per clamp.
pub fn clamp(ulimits: &[Ulimit]) -> ApiResult<(Vec<Rlimit>, Vec<String>)> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for u in ulimits {
        let (Some(&(_, number)), Some(res)) = (
            ULIMIT_NAMES.iter().find(|(n, _)| *n == u.name),
            resource(&u.name),
        ) else {
            return Err(ApiError::invalid(format!(
                "invalid ulimit type: {}",
                u.name
            )));
        };
        let (soft, hard) = (limit(u.soft), limit(u.hard));
        if soft > hard {
            return Err(ApiError::invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
        let daemon_hard = rustix::process::getrlimit(res).maximum.unwrap_or(u64::MAX);
        let new_hard = hard.min(daemon_hard);
        let new_soft = soft.min(new_hard);
        if new_hard != hard {
            warnings.push(format!(
                "ulimit {}: hard limit {} is above the daemon's hard limit {daemon_hard}: clamped to {daemon_hard}",
                u.name, u.hard
            ));
        }
        out.push(Rlimit {
            resource: number,
            soft: new_soft,
            hard: new_hard,
        });
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(name: &str, soft: i64, hard: i64) -> Ulimit {
        Ulimit {
            name: name.into(),
            soft,
            hard,
        }
    }

    #[test]
    fn clamps_to_the_daemons_hard_limit_and_says_so() {
        let daemon = rustix::process::getrlimit(Resource::Nofile)
            .maximum
            .unwrap();
        let (l, w) = clamp(&[u("nofile", 10, daemon as i64 + 1000)]).unwrap();
        assert_eq!((l[0].soft, l[0].hard), (10, daemon));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("clamped"), "{w:?}");
        let (l, w) = clamp(&[u("nofile", 64, 128)]).unwrap();
        assert_eq!((l[0].soft, l[0].hard, w.len()), (64, 128, 0));
    }

    #[test]
    fn bad_ulimits_are_named() {
        assert_eq!(
            clamp(&[u("files", 1, 1)]).unwrap_err().message,
            "invalid ulimit type: files"
        );
        assert!(clamp(&[u("nproc", 10, 5)])
            .unwrap_err()
            .message
            .contains("10 > 5"));
    }
}
