//! dockerd's `metrics-addr`: the engine's metrics in Prometheus' text format on
//! `GET /metrics`, with dockerd's metric names (containers by state, the engine's
//! information, CPUs and memory, events) and the process collector's.

use crate::daemon::services::Daemon;
use std::fmt::Write;

/// One gauge or counter with its HELP and TYPE lines.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A label value, escaped as the text format wants.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page.
pub fn render(d: &Daemon) -> String {
    let info = d.system.info();
    let mut out = String::new();
    metric(
        &mut out,
        "engine_daemon_container_states_containers",
        "gauge",
        "The count of containers in various states",
        &[
            (
                "{state=\"paused\"}".into(),
                info.containers_paused.to_string(),
            ),
            (
                "{state=\"running\"}".into(),
                info.containers_running.to_string(),
            ),
            (
                "{state=\"stopped\"}".into(),
                info.containers_stopped.to_string(),
            ),
        ],
    );
    metric(
        &mut out,
        "engine_daemon_engine_cpus_cpus",
        "gauge",
        "The number of cpus that the host system of the engine has",
        &[(String::new(), info.ncpu.to_string())],
    );
    let labels = format!(
        "{{architecture=\"{}\",commit=\"\",daemon_id=\"{}\",graphdriver=\"{}\",kernel=\"{}\",os=\"{}\",os_type=\"{}\",os_version=\"{}\",version=\"{}\"}}",
        esc(&info.architecture),
        esc(&info.id),
        esc(&info.driver),
        esc(&info.kernel_version),
        esc(&info.operating_system),
        esc(&info.os_type),
        esc(&info.os_version),
        esc(&info.server_version),
    );
    metric(
        &mut out,
        "engine_daemon_engine_info",
        "gauge",
        "The information related to the engine and the OS it is running on",
        &[(labels, "1".into())],
    );
    metric(
        &mut out,
        "engine_daemon_engine_memory_bytes",
        "gauge",
        "The number of bytes of memory that the host system of the engine has",
        &[(String::new(), info.mem_total.to_string())],
    );
    metric(
        &mut out,
        "engine_daemon_events_total",
        "counter",
        "The number of events logged",
        &[(String::new(), d.events.total().to_string())],
    );
    process(&mut out);
    out
}

/// The standard process collector's metrics, from /proc/self.
fn process(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(0);
    metric(
        out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        &[(String::new(), fds.to_string())],
    );
    metric(
        out,
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        &[(String::new(), max_fds.to_string())],
    );
    metric(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        &[(String::new(), kb("VmRSS:").to_string())],
    );
    metric(
        out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        &[(String::new(), kb("VmSize:").to_string())],
    );
}
