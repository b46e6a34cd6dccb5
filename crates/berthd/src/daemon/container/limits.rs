//! `--ulimit`: Docker's names, checked, and clamped to the daemon's own hard limits.
//! The shim inherits berthd's limits and cannot raise a hard limit (no
//! CAP_SYS_RESOURCE is assumed), so asking for more would only fail at start.

use crate::error::{ApiError, ApiResult};
use berth_api::{HostConfig, Ulimit};
use berth_runtime::spec::{CpuLimits, Rlimit, ULIMIT_NAMES};
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

fn ncpu() -> i64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as i64)
}

/// `--cpus`, `--cpu-shares`, `--cpu-quota`, `--cpu-period`, `--cpuset-cpus`,
/// checked with Docker's messages.
pub fn cpu(hc: &HostConfig) -> ApiResult<CpuLimits> {
    let n = ncpu();
    if hc.nano_cpus < 0 || hc.cpu_shares < 0 || hc.cpu_period < 0 {
        return Err(ApiError::invalid("CPU options cannot be negative"));
    }
    if hc.nano_cpus > 0 && (hc.cpu_quota != 0 || hc.cpu_period != 0) {
        return Err(ApiError::invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if hc.nano_cpus > n * 1_000_000_000 {
        return Err(ApiError::invalid(format!(
            "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
        )));
    }
    if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
        return Err(ApiError::invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(ApiError::invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    let cpuset = (!hc.cpuset_cpus.is_empty()).then(|| hc.cpuset_cpus.clone());
    if let Some(set) = &cpuset {
        let mut max = -1i64;
        for part in set.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let b: i64 = match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                (Ok(a), Ok(b)) if a <= b => b,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Invalid value {set} for cpuset cpus"
                    )))
                }
            };
            max = max.max(b);
        }
        if max >= n {
            return Err(ApiError::invalid(format!(
                "Requested CPUs are not available - requested {set}, available: 0-{}",
                n - 1
            )));
        }
    }
    let (quota, period) = if hc.nano_cpus > 0 {
        (Some(hc.nano_cpus / 10_000), Some(100_000))
    } else {
        (
            (hc.cpu_quota != 0).then_some(hc.cpu_quota),
            (hc.cpu_period > 0).then_some(hc.cpu_period as u64),
        )
    };
    let mems = hc
        .other
        .get("CpusetMems")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(String::from);
    if let Some(m) = &mems {
        let online = std::fs::read_to_string("/sys/devices/system/node/online")
            .unwrap_or_else(|_| "0".into());
        let max_node = online
            .trim()
            .split(',')
            .filter_map(|p| p.rsplit('-').next()?.trim().parse::<i64>().ok())
            .max()
            .unwrap_or(0);
        for part in m.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                (Ok(a), Ok(b)) if a <= b && b <= max_node => {}
                (Ok(_), Ok(_)) => {
                    return Err(ApiError::invalid(format!(
                        "Requested memory nodes are not available - requested {m}, available: {}",
                        online.trim()
                    )))
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Invalid value {m} for cpuset mems"
                    )))
                }
            }
        }
    }
    let int = |k: &str| hc.other.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    let (rt_period, rt_runtime) = (int("CpuRealtimePeriod"), int("CpuRealtimeRuntime"));
    if rt_period < 0 || rt_runtime < -1 {
        return Err(ApiError::invalid(
            "CPU real-time options cannot be negative",
        ));
    }
    if rt_period != 0 && rt_runtime > rt_period {
        return Err(ApiError::invalid(
            "cpu-rt-runtime cannot be higher than cpu-rt-period",
        ));
    }
    Ok(CpuLimits {
        shares: (hc.cpu_shares > 0).then_some(hc.cpu_shares as u64),
        quota,
        period,
        cpuset_cpus: cpuset,
        cpuset_mems: mems,
        rt_period: (rt_period > 0).then_some(rt_period as u64),
        rt_runtime: (rt_runtime != 0).then_some(rt_runtime),
    })
}

/// Memory and block I/O limits from HostConfig, with Docker's checks; `swap_ok` and
/// `blkio_ok` say whether the host can limit swap and weigh block I/O. Returns the
/// limits and Docker's warnings for what the host cannot do (then discarded).
pub fn memory(
    hc: &HostConfig,
    swap_ok: bool,
    blkio_ok: bool,
) -> ApiResult<(berth_runtime::cgroups::Limits, Vec<String>)> {
    let int = |k: &str| hc.other.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    let memory = hc.memory;
    let reservation = int("MemoryReservation");
    let swap = int("MemorySwap");
    let weight = int("BlkioWeight");
    let mut warnings = Vec::new();
    if memory != 0 && memory < 6 * 1024 * 1024 {
        return Err(ApiError::invalid("Minimum memory limit allowed is 6MB"));
    }
    if swap > 0 && memory == 0 {
        return Err(ApiError::invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if swap > 0 && swap < memory {
        return Err(ApiError::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if reservation < 0 || (reservation != 0 && reservation < 6 * 1024 * 1024) {
        return Err(ApiError::invalid(
            "Minimum memory reservation allowed is 6MB",
        ));
    }
    if memory > 0 && reservation > memory {
        return Err(ApiError::invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if weight != 0 && !(10..=1000).contains(&weight) {
        return Err(ApiError::invalid(
            "Range of blkio weight is from 10 to 1000",
        ));
    }
    // Docker's default: with a memory limit and no swap setting, as much swap as memory.
    let mut swap = match swap {
        0 if memory > 0 => Some(memory * 2),
        0 => None,
        s => Some(s),
    };
    if swap.is_some() && !swap_ok {
        if int("MemorySwap") != 0 {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        }
        swap = None;
    }
    let mut blkio_weight = (weight != 0).then_some(weight as u16);
    if blkio_weight.is_some() && !blkio_ok {
        warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        blkio_weight = None;
    }
    Ok((
        berth_runtime::cgroups::Limits {
            memory: (memory > 0).then_some(memory),
            reservation: (reservation > 0).then_some(reservation),
            swap,
            pids: hc.pids_limit.filter(|p| *p != 0),
            blkio_weight,
        },
        warnings,
    ))
}

/// A rootless berthd applies only the limits of the controllers its cgroup
/// subtree has (`has`; none without a delegated subtree): each other one asked
/// for is discarded with dockerd's warning for a kernel without that
/// controller, as dockerd does rootless.
pub fn discard_unavailable(hc: &mut HostConfig, has: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut warn = |what: &str| {
        warnings.push(format!(
            "Your kernel does not support {what} or the cgroup is not mounted. Limitation discarded."
        ))
    };
    let take_other = |hc: &mut HostConfig, key: &str| {
        hc.other
            .remove(key)
            .is_some_and(|v| !v.is_null() && v != 0 && v != "" && v != serde_json::json!([]))
    };
    if !has("memory")
        && (hc.memory != 0 || take_other(hc, "MemoryReservation") || take_other(hc, "MemorySwap"))
    {
        hc.memory = 0;
        hc.other.remove("MemoryReservation");
        hc.other.remove("MemorySwap");
        warn("memory limit capabilities");
    }
    if !has("memory") && hc.memory_swappiness.is_some_and(|s| s >= 0) {
        hc.memory_swappiness = None;
        warn("memory swappiness capabilities");
    }
    if !has("memory") && hc.oom_kill_disable == Some(true) {
        hc.oom_kill_disable = None;
        warn("OomKillDisable");
    }
    if !has("pids") && hc.pids_limit.is_some_and(|p| p > 0) {
        hc.pids_limit = None;
        warn("pids limit capabilities");
    }
    if !has("cpu") && (hc.nano_cpus != 0 || hc.cpu_quota != 0 || hc.cpu_period != 0) {
        hc.nano_cpus = 0;
        hc.cpu_quota = 0;
        hc.cpu_period = 0;
        warn("CPU CFS scheduler");
    }
    if !has("cpu") && hc.cpu_shares != 0 {
        hc.cpu_shares = 0;
        warn("CPU shares");
    }
    if !has("cpuset") && (!hc.cpuset_cpus.is_empty() || take_other(hc, "CpusetMems")) {
        hc.cpuset_cpus.clear();
        hc.other.remove("CpusetMems");
        warn("cpuset");
    }
    let blkio = !has("io")
        && (take_other(hc, "BlkioWeight")
            | [
                hc.blkio_weight_device.take().is_some_and(|v| !v.is_empty()),
                hc.blkio_device_read_bps
                    .take()
                    .is_some_and(|v| !v.is_empty()),
                hc.blkio_device_write_bps
                    .take()
                    .is_some_and(|v| !v.is_empty()),
                hc.blkio_device_read_iops
                    .take()
                    .is_some_and(|v| !v.is_empty()),
                hc.blkio_device_write_iops
                    .take()
                    .is_some_and(|v| !v.is_empty()),
            ]
            .contains(&true));
    if blkio {
        warn("Block I/O weight or throttling");
    }
    if take_other(hc, "CpuRealtimeRuntime") | take_other(hc, "CpuRealtimePeriod") {
        warn("CPU real-time scheduler");
    }
    warnings
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
    fn cpu_options_like_docker() {
        let hc = |f: &dyn Fn(&mut HostConfig)| {
            let mut h = HostConfig::default();
            f(&mut h);
            h
        };
        let l = cpu(&hc(&|h| h.nano_cpus = 500_000_000)).unwrap();
        assert_eq!((l.quota, l.period), (Some(50_000), Some(100_000)));
        assert!(cpu(&hc(&|h| h.nano_cpus = 1_000_000_000_000))
            .unwrap_err()
            .message
            .starts_with("Range of CPUs is from 0.01"));
        assert!(cpu(&hc(&|h| {
            h.nano_cpus = 1;
            h.cpu_period = 1000;
        }))
        .is_err());
        assert!(cpu(&hc(&|h| h.cpuset_cpus = "0-999".into()))
            .unwrap_err()
            .message
            .contains("not available"));
        assert!(cpu(&hc(&|h| h.cpuset_cpus = "x".into())).is_err());
        assert_eq!(cpu(&hc(&|h| h.cpu_shares = 512)).unwrap().shares, Some(512));
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
