//! `/version` and `/info`, with real figures from the host.

use crate::daemon::container::Containers;
use berth_api::{Info, Version, VersionComponent, API_VERSION, MIN_API_VERSION};
use std::path::PathBuf;
use std::sync::Arc;

pub struct System {
    pub containers: Arc<Containers>,
    pub images: Arc<crate::daemon::image::service::Images>,
    pub volumes: Arc<crate::daemon::volume::Volumes>,
    pub data_root: PathBuf,
    /// Reloadable (SIGHUP): `debug` and `live-restore`.
    pub debug: std::sync::atomic::AtomicBool,
    pub live_restore: std::sync::atomic::AtomicBool,
    /// Reloadable too: the daemon's `labels` and `experimental`.
    pub labels: std::sync::RwLock<Vec<String>>,
    pub experimental: std::sync::atomic::AtomicBool,
    /// And `shutdown-timeout` (seconds; -1: none).
    pub shutdown_timeout: std::sync::atomic::AtomicI64,
    pub daemon_id: String,
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn uname() -> rustix::system::Uname {
    rustix::system::uname()
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (field("PRETTY_NAME"), field("VERSION_ID"))
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl System {
    pub fn version(&self) -> Version {
        let u = uname();
        let kernel = u.release().to_string_lossy().into_owned();
        Version {
            platform: serde_json::json!({ "Name": "berth" }),
            components: vec![VersionComponent {
                name: "Engine".into(),
                version: VERSION.into(),
                details: serde_json::json!({
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "Os": "linux",
                    "Arch": berth_image::host_arch(),
                    "KernelVersion": kernel,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            }],
            version: VERSION.into(),
            api_version: API_VERSION.into(),
            min_api_version: MIN_API_VERSION.into(),
            git_commit: String::new(),
            go_version: "n/a (berth is written in Rust)".into(),
            os: "linux".into(),
            arch: berth_image::host_arch().into(),
            kernel_version: kernel,
            build_time: String::new(),
        }
    }

    pub fn info(&self) -> Info {
        let (total, running, stopped) = self.containers.counts();
        let images = self
            .images
            .store()
            .images()
            .map(|i| i.len() as i64)
            .unwrap_or(0);
        let u = uname();
        let (os_name, os_version) = os_release();
        let hier = self.containers.hierarchy();
        Info {
            id: self.daemon_id.clone(),
            containers: total,
            containers_running: running,
            containers_paused: 0,
            containers_stopped: stopped,
            images,
            driver: self.containers.paths.driver.name().into(),
            driver_status: vec![
                [
                    "Backing Filesystem".into(),
                    backing_fs(&self.data_root).into(),
                ],
                ["Supports d_type".into(), "true".into()],
            ],
            memory_limit: true,
            swap_limit: hier.has_swap_limit(),
            // The CPU controls berth applies (limits.rs), and the OOM killer
            // switch where the memory controller is v1.
            cpu_cfs_period: true,
            cpu_cfs_quota: true,
            cpu_shares: true,
            cpu_set: true,
            oom_kill_disable: hier.mode != berth_runtime::cgroups::Mode::V2,
            pids_limit: true,
            ipv4_forwarding: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .is_ok_and(|s| s.trim() == "1"),
            debug: self.debug.load(std::sync::atomic::Ordering::Relaxed),
            n_fd: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64),
            n_goroutines: 0,
            system_time: crate::daemon::time::now_rfc3339(),
            logging_driver: self.containers.default_log_driver().to_string(),
            // dockerd's word for a rootless engine without cgroups.
            cgroup_driver: if hier.is_none() { "none" } else { "cgroupfs" }.into(),
            cgroup_version: hier.version().into(),
            kernel_version: u.release().to_string_lossy().into_owned(),
            operating_system: os_name,
            os_version,
            os_type: "linux".into(),
            architecture: u.machine().to_string_lossy().into_owned(),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get() as i64),
            mem_total: mem_total(),
            index_server_address: "https://index.docker.io/v1/".into(),
            docker_root_dir: self.data_root.display().to_string(),
            name: u.nodename().to_string_lossy().into_owned(),
            labels: self
                .labels
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            experimental_build: self.experimental.load(std::sync::atomic::Ordering::Relaxed),
            server_version: VERSION.into(),
            // berth's runtime is the only one; it answers to runc's name, which
            // `--runtime runc` and compose files ask for.
            runtimes: serde_json::json!({ "runc": { "path": "berth-shim" } }),
            default_runtime: "runc".into(),
            live_restore_enabled: self.live_restore.load(std::sync::atomic::Ordering::Relaxed),
            isolation: String::new(),
            init_binary: String::new(),
            security_options: {
                let mut o = Vec::new();
                if crate::daemon::container::security::kernel_has_seccomp() {
                    o.push(format!(
                        "name=seccomp,profile={}",
                        self.containers.seccomp_profile_name()
                    ));
                }
                if self.containers.userns_remapped() {
                    o.push("name=userns".into());
                }
                if self.containers.rootless() {
                    o.push("name=rootless".into());
                }
                o.push("name=cgroupns".into());
                o
            },
            warnings: match self.containers.persist_failures() {
                0 => vec![],
                n => vec![format!(
                    "WARNING: {n} container record saves failed since berthd started; see berthd's log"
                )],
            },
            plugins: serde_json::json!({ "Volume": std::iter::once("local".to_string()).chain(self.volumes.plugin_names()).collect::<Vec<_>>(), "Network": ["bridge", "host", "ipvlan", "macvlan", "null"], "Log": ["fluentd", "gelf", "journald", "json-file", "local", "none", "syslog"] }),
            registry_config: registry_info(&self.images.registry_config()),
            swarm: serde_json::json!({ "LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null }),
            containerd_commit: serde_json::json!({ "ID": "" }),
            runc_commit: serde_json::json!({ "ID": "" }),
            init_commit: serde_json::json!({ "ID": "" }),
            ..Default::default()
        }
    }
}

/// The data root's filesystem, as dockerd names it in `info`.
pub fn backing_fs(p: &std::path::Path) -> &'static str {
    match rustix::fs::statfs(p).map(|s| s.f_type) {
        Ok(0xEF53) => "extfs",
        Ok(0x5846_5342) => "xfs",
        Ok(0x9123_683E) => "btrfs",
        Ok(0x0102_1994) => "tmpfs",
        Ok(0x794C_7630) => "overlayfs",
        Ok(0x2FC1_2FC1) => "zfs",
        _ => "<unknown>",
    }
}

/// `/info`'s RegistryConfig, as dockerd fills it: loopback always insecure, the
/// configured CIDRs and hosts, Docker Hub's index with the mirrors.
fn registry_info(c: &crate::daemon::image::pull::RegistryConfig) -> serde_json::Value {
    let mirrors: Vec<String> = c
        .mirrors
        .iter()
        .map(|m| format!("{}/", m.trim_end_matches('/')))
        .collect();
    let mut cidrs = vec!["::1/128".to_string(), "127.0.0.0/8".to_string()];
    let mut indexes = serde_json::Map::new();
    indexes.insert(
        "docker.io".into(),
        serde_json::json!({ "Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true }),
    );
    for i in &c.insecure {
        if i.contains('/') {
            if !cidrs.contains(i) {
                cidrs.push(i.clone());
            }
        } else {
            indexes.insert(
                i.clone(),
                serde_json::json!({ "Name": i, "Mirrors": [], "Secure": false, "Official": false }),
            );
        }
    }
    serde_json::json!({ "IndexConfigs": indexes, "InsecureRegistryCIDRs": cidrs, "Mirrors": mirrors })
}
