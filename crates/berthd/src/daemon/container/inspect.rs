//! `docker inspect`, `docker ps`: a container as the API shows it.

use super::endpoint::parse_port_proto;
use super::record::Endpoint;
use super::record::{Record, Status};
use super::Containers;
use crate::daemon::filter::{port_proto, regex_any};
use crate::daemon::network::BRIDGE;
use crate::daemon::time::parse_time;
use crate::error::{ApiError, ApiResult};
use berth_api::{ContainerInspect, ContainerState, ContainerSummary};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;

impl Containers {
    /// The writable layer's size, and that plus the image's (`size=1`).
    fn sizes(&self, r: &Record) -> (i64, i64) {
        let rw = crate::daemon::paths::dir_size(&self.paths.writable(&r.id)) as i64;
        let image = self.store.resolve(&r.image).map(|i| i.size()).unwrap_or(0);
        (rw, rw + image)
    }

    pub fn inspect(&self, key: &str, size: bool) -> ApiResult<ContainerInspect> {
        let c = self.get(key)?;
        let r = c.snapshot();
        let dir = self.paths.container_dir(&r.id);
        let st = &r.state;
        Ok(ContainerInspect {
            id: r.id.clone(),
            created: r.created.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            state: ContainerState {
                status: st.status_text().into(),
                running: st.status == Status::Running,
                paused: st.paused,
                restarting: st.restarting,
                oom_killed: st.oom_killed,
                dead: st.status == Status::Dead,
                pid: st.pid,
                exit_code: st.exit_code,
                error: st.error.clone(),
                started_at: st.started_at.clone(),
                finished_at: st.finished_at.clone(),
                health: st
                    .health
                    .as_ref()
                    .and_then(|h| serde_json::to_value(h).ok()),
            },
            image: r.image.clone(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            log_path: if r.host_config.log_config.kind == "none" {
                String::new()
            } else {
                self.paths.log_path(&r.id).display().to_string()
            },
            name: format!("/{}", r.name),
            restart_count: r.restart_count,
            driver: self.paths.driver.name().into(),
            platform: "linux".into(),
            exec_ids: None,
            host_config: r.host_config.clone(),
            graph_driver: match self.paths.driver {
                crate::daemon::paths::Driver::Overlay2 => serde_json::json!({
                    "Name": "overlay2",
                    "Data": {
                        "UpperDir": dir.join("upper"),
                        "WorkDir": dir.join("work"),
                        "MergedDir": dir.join("merged"),
                    }
                }),
                crate::daemon::paths::Driver::Vfs => {
                    serde_json::json!({ "Name": "vfs", "Data": null })
                }
            },
            mounts: self.mounts_json(&r),
            size_rw: size.then(|| self.sizes(&r).0),
            size_root_fs: size.then(|| self.sizes(&r).1),
            config: r.config.clone(),
            network_settings: self.network_settings(&r),
            ..Default::default()
        })
    }

    pub fn list(
        &self,
        all: bool,
        limit: Option<i64>,
        filters: &HashMap<String, Vec<String>>,
        size: bool,
    ) -> ApiResult<Vec<ContainerSummary>> {
        for (k, vals) in filters {
            match k.as_str() {
                "id" | "name" | "label" | "ancestor" | "network" | "volume" | "before"
                | "since" | "publish" | "expose" | "is-task" => {}
                "health" => {
                    for v in vals {
                        if !["starting", "healthy", "unhealthy", "none"].contains(&v.as_str()) {
                            return Err(ApiError::invalid(format!(
                                "Unrecognised filter value for health: {v}"
                            )));
                        }
                    }
                }
                "isolation" => {}
                "status" => {
                    for v in vals {
                        if ![
                            "created",
                            "restarting",
                            "running",
                            "removing",
                            "paused",
                            "exited",
                            "dead",
                        ]
                        .contains(&v.as_str())
                        {
                            return Err(ApiError::invalid(format!("invalid filter 'status={v}'")));
                        }
                    }
                }
                "exited" => {
                    for v in vals {
                        v.parse::<i64>().map_err(|_| {
                            ApiError::invalid(format!("invalid filter 'exited={v}'"))
                        })?;
                    }
                }
                other => return Err(ApiError::invalid(format!("invalid filter '{other}'"))),
            }
        }
        let ancestors: Vec<String> = filters
            .get("ancestor")
            .map(|a| {
                a.iter()
                    .filter_map(|n| self.store.resolve(n).ok().map(|i| i.id))
                    .collect()
            })
            .unwrap_or_default();
        // before= and since= name a container; those created before or after it.
        let created_of = |k: &str| -> ApiResult<Option<String>> {
            match filters.get(k).and_then(|v| v.first()) {
                None => Ok(None),
                Some(key) => Ok(Some(self.get(key)?.rec().created.clone())),
            }
        };
        let (before, since) = (created_of("before")?, created_of("since")?);
        let networks: Vec<(String, String)> =
            self.net.all().into_iter().map(|n| (n.id, n.name)).collect();
        // As in dockerd, a limit (`ps -n`, `ps -l`) or a status filter implies all.
        let all = all || limit.is_some_and(|n| n > 0);
        let explicit_status = filters.contains_key("status") || filters.contains_key("exited");
        let matches = |r: &Record| {
            let f = |k: &str| filters.get(k).filter(|v| !v.is_empty());
            if !all && !explicit_status && r.state.status != Status::Running {
                return false;
            }
            if let Some(ids) = f("id") {
                if !ids.iter().any(|i| r.id.starts_with(i.as_str())) {
                    return false;
                }
            }
            // A regular expression, against the name with and without its "/".
            if let Some(ns) = f("name") {
                if !regex_any(ns, &format!("/{}", r.name)) && !regex_any(ns, &r.name) {
                    return false;
                }
            }
            if let Some(nets) = f("network") {
                let on = |want: &String| {
                    r.endpoints.iter().any(|(name, ep)| {
                        name == want
                            || (!ep.network_id.is_empty()
                                && ep.network_id.starts_with(want.as_str()))
                            || networks
                                .iter()
                                .any(|(id, n)| n == want && *id == ep.network_id)
                    })
                };
                if !nets.iter().any(on) {
                    return false;
                }
            }
            if let Some(vols) = f("volume") {
                if !vols.iter().any(|v| {
                    r.mounts
                        .iter()
                        .any(|m| &m.source == v || &m.destination == v)
                }) {
                    return false;
                }
            }
            if let Some(hs) = f("health") {
                let h = r
                    .state
                    .health
                    .as_ref()
                    .map_or("none", |h| h.status.as_str());
                if !hs.iter().any(|x| x == h) {
                    return false;
                }
            }
            if before.as_ref().is_some_and(|b| r.created >= *b)
                || since.as_ref().is_some_and(|s| r.created <= *s)
            {
                return false;
            }
            if let Some(ps) = f("publish") {
                let ok = ps.iter().any(|p| {
                    let (port, proto) = port_proto(p);
                    r.ports
                        .iter()
                        .any(|b| b.host_port.to_string() == port && b.proto == proto)
                });
                if !ok {
                    return false;
                }
            }
            if let Some(es) = f("expose") {
                let exposed = r.config.exposed_ports.clone().unwrap_or_default();
                let ok = es.iter().any(|e| {
                    let (port, proto) = port_proto(e);
                    exposed.contains_key(&format!("{port}/{proto}"))
                });
                if !ok {
                    return false;
                }
            }
            // No container of berth's is a swarm task.
            if f("is-task").is_some_and(|v| v.iter().any(|x| x == "true" || x == "1")) {
                return false;
            }
            if let Some(st) = f("status") {
                if !st.iter().any(|s| s == r.state.status_text()) {
                    return false;
                }
            }
            if let Some(codes) = f("exited") {
                if r.state.status != Status::Exited
                    || !codes
                        .iter()
                        .any(|c| c.parse::<i64>().ok() == Some(r.state.exit_code))
                {
                    return false;
                }
            }
            if let Some(labels) = f("label") {
                let have = r.config.labels.clone().unwrap_or_default();
                let ok = labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => have.get(k).map(String::as_str) == Some(v),
                    None => have.contains_key(l),
                });
                if !ok {
                    return false;
                }
            }
            if filters.contains_key("ancestor") && !ancestors.contains(&r.image) {
                return false;
            }
            true
        };
        // Each record is read under its own lock, never copied: only what the
        // answer shows is taken from it.
        let mut found: Vec<(String, ContainerSummary)> = Vec::new();
        for c in self.all() {
            let r = c.rec();
            if !matches(&r) {
                continue;
            }
            let mut s = summary(&r);
            s.mounts = self.mounts_json(&r);
            let created = r.created.clone();
            if size {
                // Sizes walk the writable layer: not under the lock.
                let snapshot = r.clone();
                drop(r);
                let (rw, root) = self.sizes(&snapshot);
                s.size_rw = Some(rw);
                s.size_root_fs = Some(root);
            }
            found.push((created, s));
        }
        // Newest first.
        found.sort_by(|a, b| b.0.cmp(&a.0));
        let mut out: Vec<ContainerSummary> = found.into_iter().map(|(_, s)| s).collect();
        if let Some(n) = limit.filter(|n| *n > 0) {
            out.truncate(n as usize);
        }
        Ok(out)
    }

    pub fn counts(&self) -> (i64, i64, i64) {
        let all = self.all();
        let running = all.iter().filter(|c| c.is_running()).count() as i64;
        (all.len() as i64, running, all.len() as i64 - running)
    }
}

fn summary(r: &Record) -> ContainerSummary {
    let created = parse_time(&r.created).map_or(0, |t| t.timestamp());
    let now = chrono::Utc::now();
    let status = match r.state.status {
        Status::Running => {
            let since = parse_time(&r.state.started_at).unwrap_or(now);
            let paused = if r.state.paused { " (Paused)" } else { "" };
            let health = match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_string(),
                Some(s) => format!(" ({s})"),
                None => String::new(),
            };
            format!("Up {}{paused}{health}", human_duration(now - since))
        }
        Status::Exited if r.state.restarting => {
            let since = parse_time(&r.state.finished_at).unwrap_or(now);
            format!(
                "Restarting ({}) {} ago",
                r.state.exit_code,
                human_duration(now - since)
            )
        }
        Status::Exited => {
            let since = parse_time(&r.state.finished_at).unwrap_or(now);
            format!(
                "Exited ({}) {} ago",
                r.state.exit_code,
                human_duration(now - since)
            )
        }
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    };
    // As moby writes it: an argument with a space in single quotes.
    let mut command = r.path.clone();
    for a in &r.args {
        command.push(' ');
        if a.contains(' ') {
            command.push('\'');
            command.push_str(a);
            command.push('\'');
        } else {
            command.push_str(a);
        }
    }
    let mode = if r.host_config.network_mode.is_empty() {
        "default".to_string()
    } else {
        r.host_config.network_mode.clone()
    };
    ContainerSummary {
        id: r.id.clone(),
        names: vec![format!("/{}", r.name)],
        image: r.config.image.clone(),
        image_id: r.image.clone(),
        command,
        created,
        ports: Containers::summary_ports(r),
        labels: r.config.labels.clone().unwrap_or_default(),
        state: r.state.status_text().into(),
        status,
        host_config: berth_api::SummaryHostConfig { network_mode: mode },
        network_settings: berth_api::SummaryNetworkSettings {
            networks: r
                .endpoints
                .iter()
                .map(|(n, e)| (n.clone(), endpoint_state(e, &r.name, &r.id)))
                .collect(),
        },
        mounts: vec![],
        size_rw: None,
        size_root_fs: None,
    }
}

fn human_duration(d: chrono::TimeDelta) -> String {
    berth_api::human_duration(d.num_seconds())
}

/// How a container's networking shows in inspect and `ps`.
impl Containers {
    /// `NetworkSettings` of container inspect.
    pub(super) fn network_settings(&self, r: &Record) -> Value {
        let mut networks = serde_json::Map::new();
        for (name, ep) in &r.endpoints {
            networks.insert(name.clone(), endpoint_json(ep, &r.name, &r.id));
        }
        let mut ports = serde_json::Map::new();
        for key in r.config.exposed_ports.clone().unwrap_or_default().keys() {
            ports.insert(key.clone(), Value::Null);
        }
        if let Some(pb) = r
            .host_config
            .other
            .get("PortBindings")
            .and_then(Value::as_object)
        {
            for k in pb.keys() {
                let key = if k.contains('/') {
                    k.clone()
                } else {
                    format!("{k}/tcp")
                };
                ports.entry(key).or_insert(Value::Null);
            }
        }
        for p in &r.ports {
            let key = format!("{}/{}", p.container_port, p.proto);
            let entry = ports.entry(key).or_insert(Value::Null);
            if !entry.is_array() {
                *entry = json!([]);
            }
            entry
                .as_array_mut()
                .expect("an array")
                .push(json!({ "HostIp": p.host_ip, "HostPort": p.host_port.to_string() }));
        }
        let running = r.state.status == crate::daemon::container::record::Status::Running;
        let bridge = r.endpoints.get(BRIDGE);
        let s = |v: Option<String>| v.unwrap_or_default();
        json!({
            "Bridge": "",
            "SandboxID": if running && r.endpoints.values().any(|e| e.ipv4.is_some()) { r.id.clone() } else { String::new() },
            "SandboxKey": if running && r.state.pid > 0 { format!("/proc/{}/ns/net", r.state.pid) } else { String::new() },
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": if running { Value::Object(ports) } else { json!({}) },
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": s(bridge.map(|e| e.endpoint_id.clone())),
            "Gateway": s(bridge.and_then(|e| e.gateway4.map(|g| g.to_string()))),
            "GlobalIPv6Address": s(bridge.and_then(|e| e.ipv6.map(|g| g.to_string()))),
            "GlobalIPv6PrefixLen": bridge.map_or(0, |e| e.prefix6),
            "IPAddress": s(bridge.and_then(|e| e.ipv4.map(|g| g.to_string()))),
            "IPPrefixLen": bridge.map_or(0, |e| e.prefix4),
            "IPv6Gateway": s(bridge.and_then(|e| e.gateway6.map(|g| g.to_string()))),
            "MacAddress": s(bridge.map(|e| e.mac.clone())),
            "Networks": networks,
        })
    }

    /// `Ports` of the container list: none for a container that does not run (its
    /// network settings are released, as in Docker).
    pub(super) fn summary_ports(r: &Record) -> Vec<berth_api::Port> {
        if r.state.status != Status::Running {
            return Vec::new();
        }
        let mut out: Vec<berth_api::Port> = r
            .ports
            .iter()
            .map(|p| berth_api::Port {
                ip: Some(p.host_ip.clone()),
                private_port: p.container_port,
                public_port: Some(p.host_port),
                kind: p.proto.clone(),
            })
            .collect();
        for key in r.config.exposed_ports.iter().flat_map(|e| e.keys()) {
            if let Ok((port, proto)) = parse_port_proto(key) {
                if !r
                    .ports
                    .iter()
                    .any(|p| p.container_port == port && p.proto == proto)
                {
                    out.push(berth_api::Port {
                        ip: None,
                        private_port: port,
                        public_port: None,
                        kind: proto,
                    });
                }
            }
        }
        out
    }
}

pub fn endpoint_state(ep: &Endpoint, name: &str, id: &str) -> berth_api::EndpointState {
    let s = |v: Option<IpAddr>| v.map(|i| i.to_string()).unwrap_or_default();
    let ipam_config =
        (ep.want_ipv4.is_some() || ep.want_ipv6.is_some()).then(|| berth_api::EndpointIpam {
            ipv4_address: s(ep.want_ipv4),
            ipv6_address: s(ep.want_ipv6),
        });
    let dns_names = ep.ipv4.is_some().then(|| {
        let mut names = vec![name.to_string(), id[..12].to_string()];
        names.extend(ep.aliases.iter().cloned());
        names
    });
    berth_api::EndpointState {
        ipam_config,
        links: (!ep.links.is_empty()).then(|| ep.links.clone()),
        aliases: (!ep.aliases.is_empty()).then(|| ep.aliases.clone()),
        mac_address: ep.mac.clone(),
        driver_opts: None,
        gw_priority: 0,
        network_id: ep.network_id.clone(),
        endpoint_id: ep.endpoint_id.clone(),
        gateway: s(ep.gateway4),
        ip_address: s(ep.ipv4),
        ip_prefix_len: ep.prefix4,
        ipv6_gateway: s(ep.gateway6),
        global_ipv6_address: s(ep.ipv6),
        global_ipv6_prefix_len: ep.prefix6,
        dns_names,
    }
}

/// [`endpoint_state`] as JSON (inspect's `NetworkSettings.Networks`).
pub fn endpoint_json(ep: &Endpoint, name: &str, id: &str) -> Value {
    serde_json::to_value(endpoint_state(ep, name, id)).expect("serialises")
}
