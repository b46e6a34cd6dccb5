//! `POST /containers/create`: validate, merge the image's config, lay out the
//! container's directory, record it.

use crate::daemon::container::record::{Container, Record, RunState};
use crate::daemon::container::{Containers, Error};
use crate::daemon::ids;
use crate::daemon::time::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use berth_api::{ContainerCreateRequest, ContainerCreateResponse, HostConfig};
use std::sync::Arc;

/// HostConfig fields berth does not implement yet. Set to anything but their zero
/// value, they are refused with a clear message instead of being ignored.
fn unsupported_host_options(hc: &HostConfig) -> Option<String> {
    // Harmless fields: sizing hints and client-side bookkeeping.
    const IGNORED: &[&str] = &[
        "ConsoleSize",
        "ContainerIDFile",
        "Annotations",
        // Networking, handled by endpoint.rs.
        "PortBindings",
        "PublishAllPorts",
        "Dns",
        "DnsSearch",
        "DnsOptions",
        "ExtraHosts",
        "Links",
        // Storage, handled by mounts.rs (StorageOpt: check_storage_opts).
        "StorageOpt",
        // Limits, handled by limits.rs.
        "MemoryReservation",
        "MemorySwap",
        "BlkioWeight",
        "CpusetMems",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "Binds",
        "Mounts",
        "Tmpfs",
        "VolumesFrom",
        "ReadonlyRootfs",
        "VolumeDriver",
        // security.rs.
        "SecurityOpt",
        // options.rs: refused with Docker's words when a GPU is asked for.
        "DeviceRequests",
    ];
    for (k, v) in &hc.other {
        if IGNORED.contains(&k.as_str()) {
            continue;
        }
        let empty = match v {
            serde_json::Value::Null => true,
            serde_json::Value::Bool(b) => !b,
            // MemorySwappiness -1 is the client's "unset".
            serde_json::Value::Number(n) => {
                n.as_f64() == Some(0.0) || (k == "MemorySwappiness" && n.as_i64() == Some(-1))
            }
            serde_json::Value::String(s) => s.is_empty(),
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(o) => o.is_empty(),
        };
        if !empty {
            return Some(k.clone());
        }
    }
    None
}

/// The host's name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn merge_env(image: &[String], user: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<String> = image.to_vec();
    for e in user {
        let k = key(e);
        match out.iter().position(|x| key(x) == k) {
            Some(i) => out[i] = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

impl Containers {
    pub fn create(
        self: &Arc<Self>,
        name: Option<&str>,
        req: ContainerCreateRequest,
    ) -> ApiResult<ContainerCreateResponse> {
        self.create_for(name, req, None)
    }

    /// [`Containers::create`] with the `platform` the client asked for.
    pub fn create_for(
        self: &Arc<Self>,
        name: Option<&str>,
        req: ContainerCreateRequest,
        platform: Option<&str>,
    ) -> ApiResult<ContainerCreateResponse> {
        let mut config = req.config;
        let mut hc = req.host_config.unwrap_or_default();
        if config.image.is_empty() {
            return Err(ApiError::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        if let Some(opt) = unsupported_host_options(&hc) {
            return Err(ApiError::not_implemented(format!(
                "berth does not support HostConfig.{opt} yet"
            )));
        }
        crate::daemon::container::security::parse(&hc)?;
        if let Some(what) = self.defaults.runtimes.get(&hc.runtime) {
            return Err(ApiError::invalid(format!(
                "runtime {} ({what}) is configured, but berth runs containers with its own runtime only (runc)",
                hc.runtime
            )));
        }
        super::options::check(&hc)?;
        self.check_userns(&hc)?;
        // Docker records the size /dev/shm gets (the daemon's default unless
        // given), the log driver and the cgroup namespace mode.
        if hc.shm_size == 0 {
            hc.shm_size = self.defaults.shm_size;
        }
        // dockerd's merge: the default driver when none is named, and its
        // default options under the container's own when the driver is that one.
        if hc.log_config.kind.is_empty() {
            hc.log_config.kind = self.defaults.log.kind.clone();
        }
        if hc.log_config.kind == self.defaults.log.kind {
            if let Some(defaults) = &self.defaults.log.config {
                let own = hc.log_config.config.get_or_insert_with(Default::default);
                for (k, v) in defaults {
                    own.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        if hc.cgroupns_mode.is_empty() {
            hc.cgroupns_mode = self.defaults.cgroupns_mode.clone();
        }
        let mut endpoints = self.plan_endpoints(&hc, req.networking_config.as_ref())?;
        // --link on a user-defined network: aliases of the primary endpoint.
        if let crate::daemon::container::endpoint::Mode::Named(n) =
            crate::daemon::container::endpoint::mode(&hc.network_mode)
        {
            let links: Vec<String> = hc
                .other
                .get("Links")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(String::from))
                .collect();
            let id = self.net.find(n).map(|n| n.id);
            if let Some(ep) = endpoints
                .values_mut()
                .find(|e| id.as_ref().is_some_and(|id| &e.network_id == id))
            {
                for l in links {
                    if !ep.links.contains(&l) {
                        ep.links.push(l);
                    }
                }
            }
        }
        if let Some(m) = config.mac_address.as_deref().filter(|m| !m.is_empty()) {
            if berth_net::netlink::parse_mac(m).is_none() {
                return Err(ApiError::invalid(format!("invalid MAC address {m:?}")));
            }
        }
        if hc.network_mode.is_empty() || hc.network_mode == "default" {
            hc.network_mode = "bridge".into();
        }
        let shared_net = matches!(
            crate::daemon::container::endpoint::mode(&hc.network_mode),
            crate::daemon::container::endpoint::Mode::Host
                | crate::daemon::container::endpoint::Mode::Container(_)
        );
        if shared_net
            && hc
                .other
                .get("PortBindings")
                .and_then(|v| v.as_object())
                .is_some_and(|o| !o.is_empty())
        {
            // Docker warns and drops them for host mode; it refuses them for container mode.
            if hc.network_mode.starts_with("container:") {
                return Err(ApiError::invalid(
                    "conflicting options: port publishing and the container type network mode",
                ));
            }
        }
        if let Some(links) = hc.other.get("Links").and_then(|v| v.as_array()) {
            // On the default bridge a link is Docker's legacy link (/etc/hosts and
            // variables); on a user-defined network an alias only the linking
            // container resolves (its endpoint's Links); with no network of its
            // own there is nothing to link.
            if !links.is_empty()
                && matches!(
                    crate::daemon::container::endpoint::mode(&hc.network_mode),
                    crate::daemon::container::endpoint::Mode::Host
                        | crate::daemon::container::endpoint::Mode::None
                        | crate::daemon::container::endpoint::Mode::Container(_)
                )
            {
                return Err(ApiError::invalid(
                    "conflicting options: --link is only supported on the default bridge network and user-defined networks",
                ));
            }
            for l in links.iter().filter_map(|l| l.as_str()) {
                let (target, _) = crate::daemon::container::record::parse_link(l);
                self.get(target).map_err(|_| {
                    ApiError::invalid(format!("could not get container for {target}"))
                })?;
            }
        }
        // Rootless: only the limits of the controllers its subtree has (none
        // without delegation); the others are discarded with dockerd's warnings.
        let discarded = if self.defaults.rootless {
            let have = self.rootless_controllers();
            crate::daemon::container::limits::discard_unavailable(&mut hc, &|c| {
                have.iter().any(|h| h == c)
            })
        } else {
            Vec::new()
        };
        crate::daemon::container::restart::validate(&hc)?;
        crate::daemon::container::logs::rotation(&hc.log_config)?;
        let cpu = crate::daemon::container::limits::cpu(&hc)?;
        self.check_rt(&cpu)?;
        match hc.log_config.kind.as_str() {
            "" => hc.log_config.kind = "json-file".into(),
            "json-file" | "local" | "none" => {}
            d if crate::daemon::container::logdrivers::REMOTE.contains(&d) => {}
            d => {
                return Err(ApiError::invalid(format!(
                    "logger: no log driver named '{d}' is registered"
                )))
            }
        }
        let (_, mut warnings) = crate::daemon::container::limits::clamp(
            &self.merged_ulimits(hc.ulimits.as_deref().unwrap_or(&[])),
        )?;
        let (_, memory_warnings) = crate::daemon::container::limits::memory(
            &hc,
            self.hierarchy.has_swap_limit(),
            self.hierarchy.has_blkio_weight(),
        )?;
        warnings.extend(memory_warnings);
        warnings.extend(discarded);
        warnings.extend(super::options::warnings(&hc, &self.hierarchy));
        if hc.network_mode == "host"
            && hc
                .other
                .get("PortBindings")
                .and_then(|v| v.as_object())
                .is_some_and(|o| !o.is_empty())
        {
            warnings.push("Published ports are discarded when using host network mode".into());
        }
        let image = self.store.resolve(&config.image)?;
        match platform.filter(|p| !p.is_empty()) {
            Some(p) => super::platform::check_requested(&config.image, &image.config, p)?,
            None => warnings.extend(super::platform::warning(&image.config)),
        }

        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !ids::valid(n) {
                    return Err(ApiError::invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                let n = n.trim_start_matches('/').to_string();
                if let Some(id) = self.name_taken(&n) {
                    return Err(ApiError::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => loop {
                let n = ids::random();
                if self.name_taken(&n).is_none() {
                    break n;
                }
            },
        };

        // The image's config is the base; what the request sets wins (Docker's merge).
        let img = image.config.config.clone().unwrap_or_default();
        let user_env = config.env.take().unwrap_or_default();
        config.env = Some(merge_env(img.env.as_deref().unwrap_or(&[]), &user_env));
        if config.entrypoint.is_none() && config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            config.entrypoint = img.entrypoint.clone();
            config.cmd = img.cmd.clone();
        } else if config.entrypoint.is_none() {
            config.entrypoint = img.entrypoint.clone();
        }
        if config.working_dir.is_empty() {
            config.working_dir = img.working_dir.clone();
        }
        if config.user.is_empty() {
            config.user = img.user.clone();
        }
        if config.stop_signal.is_none() {
            config.stop_signal = img.stop_signal.clone();
        }
        let mut labels = img.labels.clone().unwrap_or_default();
        labels.extend(config.labels.take().unwrap_or_default());
        config.labels = Some(labels);
        if config.exposed_ports.is_none() {
            config.exposed_ports = img.exposed_ports.clone();
        }
        // The image's VOLUMEs and the request's (-v /path) together.
        let mut volumes = img.volumes.clone().unwrap_or_default();
        volumes.extend(config.volumes.take().unwrap_or_default());
        config.volumes = (!volumes.is_empty()).then_some(volumes);
        if config.healthcheck.is_none() {
            config.healthcheck = img.healthcheck.clone();
        }
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(ApiError::invalid("no command specified"));
        }

        let id = loop {
            let id = ids::new_id();
            // Docker never hands out an all-digit short id: it would read as a number.
            if !id[..12].bytes().all(|b| b.is_ascii_digit()) && self.get(&id).is_err() {
                break id;
            }
        };
        if hc.uts_mode == "host" {
            if !config.hostname.is_empty() {
                return Err(ApiError::invalid(
                    "conflicting options: hostname and the UTS mode",
                ));
            }
            // The host's UTS namespace: the host's name, as Docker shows it.
            config.hostname = host_name();
        } else if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        self.check_storage_opts(&hc)?;
        let (mounts, made_volumes) = self.plan_mounts(&config, &hc)?;
        let undo_volumes = |me: &Self| {
            for v in &made_volumes {
                let _ = me.volumes.remove(v);
            }
        };
        let rec = Record {
            id: id.clone(),
            name,
            created: now_rfc3339(),
            image: image.id.clone(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config: hc,
            state: RunState::default(),
            restart_count: 0,
            manually_stopped: false,
            endpoints,
            ports: Vec::new(),
            mounts,
            remove_volumes: false,
        };
        if let Err(e) = self.lay_out(&rec) {
            undo_volumes(self);
            return Err(e);
        }
        let c = Arc::new(Container::new(rec));
        if let Err(e) = self.persist(&c) {
            let _ = std::fs::remove_dir_all(self.paths.container_dir(&id));
            undo_volumes(self);
            return Err(e);
        }
        self.emit(&c, "create", &[]);
        self.insert(c);
        Ok(ContainerCreateResponse { id, warnings })
    }

    /// Creates the container's directory: the writable layer and the files bound
    /// over /etc/hostname, /etc/hosts and /etc/resolv.conf. All or nothing.
    fn lay_out(&self, rec: &Record) -> ApiResult<()> {
        let dir = self.paths.container_dir(&rec.id);
        let lower = match self.paths.driver {
            crate::daemon::paths::Driver::Vfs => {
                self.store.lower_dirs(&self.store.resolve(&rec.image)?)
            }
            crate::daemon::paths::Driver::Overlay2 => Vec::new(),
        };
        let result = (|| -> std::io::Result<()> {
            match self.paths.driver {
                crate::daemon::paths::Driver::Overlay2 => {
                    for d in ["upper", "work", "merged"] {
                        std::fs::create_dir_all(dir.join(d))?;
                    }
                }
                crate::daemon::paths::Driver::Vfs => {
                    // The container's root: a full copy of the image.
                    std::fs::create_dir_all(dir.join("merged"))?;
                    std::fs::create_dir_all(dir.join("rootfs"))?;
                    crate::daemon::image::layers::copy_merged(
                        &lower,
                        std::path::Path::new(""),
                        &dir.join("rootfs"),
                    )?;
                }
            }
            let host_mode = rec.host_config.network_mode == "host";
            let hostname = if host_mode {
                host_name()
            } else {
                rec.config.hostname.clone()
            };
            std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
            let hosts = if host_mode {
                std::fs::read_to_string("/etc/hosts").unwrap_or_default()
            } else {
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
            };
            std::fs::write(dir.join("hosts"), hosts)?;
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let resolv = if host_mode {
                host_resolv
            } else {
                // Like Docker: loopback resolvers of the host are unreachable from
                // the container's own network namespace, so they are left out.
                host_resolv
                    .lines()
                    .filter(|l| {
                        let mut f = l.split_whitespace();
                        !(f.next() == Some("nameserver")
                            && f.next()
                                .is_some_and(|a| a.starts_with("127.") || a == "::1"))
                    })
                    .map(|l| format!("{l}\n"))
                    .collect()
            };
            std::fs::write(dir.join("resolv.conf"), resolv)?;
            Ok(())
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            Error::Layout {
                id: rec.id.clone(),
                path: dir.clone(),
                source: e,
            }
            .into()
        })
    }
}

impl Containers {
    /// A real-time budget needs the kernel's real-time group scheduling and fits
    /// in the daemon's (`--cpu-rt-runtime`).
    pub(super) fn check_rt(&self, cpu: &berth_runtime::spec::CpuLimits) -> ApiResult<()> {
        if cpu.rt_period.is_none() && cpu.rt_runtime.is_none() {
            return Ok(());
        }
        if !self.hierarchy.has_rt() {
            return Err(ApiError::invalid(if cpu.rt_runtime.is_some() {
                "Your kernel does not support cgroup cpu real-time runtime"
            } else {
                "Your kernel does not support cgroup cpu real-time period"
            }));
        }
        if let Some(r) = cpu.rt_runtime.filter(|r| *r > self.defaults.cpu_rt_runtime) {
            return Err(ApiError::invalid(format!(
                "cpu-rt-runtime {r} is more than the daemon gives its containers in all (--cpu-rt-runtime {})",
                self.defaults.cpu_rt_runtime
            )));
        }
        Ok(())
    }
}

impl super::Defaults {
    /// The ulimits and log options checked as a container's own are.
    pub fn validate(&self) -> Result<(), String> {
        crate::daemon::container::limits::clamp(&self.ulimits)
            .map_err(|e| format!("invalid default-ulimits: {}", e.message))?;
        crate::daemon::container::logs::rotation(&self.log)
            .map_err(|e| format!("invalid log-opts: {}", e.message))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge_overrides_by_key() {
        let img = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let user = vec!["A=2".to_string(), "B=3".to_string()];
        assert_eq!(merge_env(&img, &user), ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn unsupported_options_are_named() {
        let mut hc = HostConfig::default();
        hc.other
            .insert("ConsoleSize".into(), serde_json::json!([24, 80]));
        hc.other
            .insert("CpuRealtimeRuntime".into(), serde_json::json!(0));
        hc.other.insert("Binds".into(), serde_json::Value::Null);
        assert_eq!(unsupported_host_options(&hc), None);
        hc.other
            .insert("KernelMemoryTCP".into(), serde_json::json!(950000));
        assert_eq!(
            unsupported_host_options(&hc).as_deref(),
            Some("KernelMemoryTCP")
        );
    }
}
