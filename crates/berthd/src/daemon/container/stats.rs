//! `docker stats`: Docker's stats JSON from the container's cgroup, one-shot or
//! streamed every second. The previous sample is kept, so a one-shot answer has a
//! `precpu_stats` to compute CPU % from without waiting a second (dockerd waits).

use crate::daemon::container::record::ZERO_TIME;
use crate::daemon::container::Containers;
use crate::daemon::time::now_rfc3339;
use crate::error::ApiResult;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// All CPU time of the host, in nanoseconds (from /proc/stat, in USER_HZ = 100).
fn system_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000
            })
        })
        .unwrap_or(0)
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Interface counters of a process's network namespace, loopback left out.
fn networks(pid: i64) -> Option<Value> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut out = serde_json::Map::new();
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() >= 12 {
            out.insert(
                name.to_string(),
                json!({
                    "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                    "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
                }),
            );
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

impl Containers {
    /// The baseline of a container that just started: no CPU used yet, and the
    /// host's CPU time now, so that the first sample reports the average since start.
    pub(super) fn stats_baseline(&self, c: &crate::daemon::container::record::Container) {
        let cpu = json!({
            "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 },
            "system_cpu_usage": system_cpu_ns(),
            "online_cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        });
        *c.stats_prev.lock().unwrap_or_else(|p| p.into_inner()) = Some((cpu, now_rfc3339()));
    }

    fn stats_sample(&self, id: &str) -> ApiResult<Value> {
        let c = self.get(id)?;
        let (name, pid, running, net_private) = {
            let r = c.rec();
            (
                format!("/{}", r.name),
                r.state.pid,
                r.state.status == crate::daemon::container::record::Status::Running,
                r.host_config.network_mode != "host",
            )
        };
        let path = self.cgroup_path(&c.rec());
        let st = if running {
            self.hierarchy.stats(&path)
        } else {
            Default::default()
        };
        let inactive_key = if self.hierarchy.mode == berth_runtime::cgroups::Mode::V2 {
            "inactive_file"
        } else {
            "total_inactive_file"
        };
        let io: Vec<Value> = st
            .io_bytes
            .iter()
            .map(|(maj, min, op, v)| json!({ "major": maj, "minor": min, "op": op, "value": v }))
            .collect();
        let cpu = json!({
            "cpu_usage": {
                "total_usage": st.cpu_total_ns,
                "usage_in_kernelmode": st.cpu_system_ns,
                "usage_in_usermode": st.cpu_user_ns,
            },
            "system_cpu_usage": system_cpu_ns(),
            "online_cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
        });
        let now = now_rfc3339();
        let (precpu, preread) = {
            let mut prev = c.stats_prev.lock().unwrap_or_else(|p| p.into_inner());
            let old = prev.replace((cpu.clone(), now.clone()));
            old.unwrap_or_else(|| (json!({ "cpu_usage": { "total_usage": 0 }, "system_cpu_usage": 0, "online_cpus": 0 }), ZERO_TIME.to_string()))
        };
        let mut v = json!({
            "read": now,
            "preread": preread,
            "pids_stats": { "current": st.pids, "limit": st.pids_limit },
            "blkio_stats": {
                "io_service_bytes_recursive": io,
                "io_serviced_recursive": null, "io_queue_recursive": null, "io_service_time_recursive": null,
                "io_wait_time_recursive": null, "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
            },
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu,
            "precpu_stats": precpu,
            "memory_stats": if running {
                json!({
                    "usage": st.memory_usage,
                    "stats": { inactive_key: st.memory_inactive_file },
                    "limit": st.memory_limit.unwrap_or_else(mem_total),
                })
            } else {
                json!({})
            },
            "name": name,
            "id": c.id,
        });
        if let Some(n) = (running && net_private).then(|| networks(pid)).flatten() {
            v["networks"] = n;
        }
        Ok(v)
    }

    /// One sample, or a sample a second until the client leaves or the container
    /// is removed.
    pub fn stats(self: &Arc<Self>, key: &str, stream: bool) -> ApiResult<mpsc::Receiver<Bytes>> {
        let first = self.stats_sample(key)?;
        let id = self.get(key)?.id.clone();
        let (tx, rx) = mpsc::channel(4);
        let me = self.clone();
        tokio::spawn(async move {
            let mut v = first;
            loop {
                let mut line = serde_json::to_vec(&v).expect("stats serialise");
                line.push(b'\n');
                if tx.send(Bytes::from(line)).await.is_err() || !stream {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tx.closed() => return,
                }
                match me.stats_sample(&id) {
                    Ok(next) => v = next,
                    Err(_) => return,
                }
            }
        });
        Ok(rx)
    }
}
