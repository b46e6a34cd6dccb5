//! The network API: list, inspect, create, remove, prune, and connecting and
//! disconnecting containers, live or stopped.

use super::containers::Containers;
use super::endpoint::{mode, Mode};
use super::network::{CreateRequest, NetRecord};
use super::record::{Endpoint, Status};
use crate::error::{ApiError, ApiResult};
use berth_api::ErrorKind;
use berth_net::netlink::Netlink;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::fd::AsFd;

type Filters = HashMap<String, Vec<String>>;

fn label_matches(labels: &std::collections::BTreeMap<String, String>, want: &[String]) -> bool {
    want.iter().all(|l| match l.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(l),
    })
}

impl Containers {
    /// A network as the API shows it; `containers` lists its running endpoints.
    pub fn network_json(&self, n: &NetRecord, containers: bool) -> Value {
        let mut eps = serde_json::Map::new();
        if containers {
            for c in self.all() {
                let r = c.rec();
                if r.state.status != Status::Running {
                    continue;
                }
                for ep in r.endpoints.values().filter(|e| e.network_id == n.id) {
                    let with = |ip: Option<std::net::IpAddr>, p: u8| {
                        ip.map(|i| format!("{i}/{p}")).unwrap_or_default()
                    };
                    eps.insert(
                        r.id.clone(),
                        json!({
                            "Name": r.name,
                            "EndpointID": ep.endpoint_id,
                            "MacAddress": ep.mac,
                            "IPv4Address": with(ep.ipv4, ep.prefix4),
                            "IPv6Address": with(ep.ipv6, ep.prefix6),
                        }),
                    );
                }
            }
        }
        let config: Vec<Value> = n
            .pools
            .iter()
            .map(|p| {
                let mut v =
                    json!({ "Subnet": p.subnet.to_string(), "Gateway": p.gateway.to_string() });
                if let Some(r) = p.ip_range {
                    v["IPRange"] = json!(r.to_string());
                }
                v
            })
            .collect();
        json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv4": n.is_bridge(),
            "EnableIPv6": n.enable_ipv6,
            "IPAM": { "Driver": "default", "Options": if n.user_defined() { json!({}) } else { Value::Null }, "Config": config },
            "Internal": n.internal,
            "Attachable": n.attachable,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": eps,
            "Options": n.options,
            "Labels": n.labels,
        })
    }

    /// Networks with at least one endpoint (running or not).
    fn networks_in_use(&self) -> std::collections::HashSet<String> {
        self.all()
            .iter()
            .flat_map(|c| {
                c.rec()
                    .endpoints
                    .values()
                    .map(|e| e.network_id.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `GET /networks` with Docker's filters.
    pub fn list_networks(&self, f: &Filters) -> ApiResult<Vec<Value>> {
        for k in f.keys() {
            if !["name", "id", "driver", "label", "type", "scope", "dangling"].contains(&k.as_str())
            {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        for t in f.get("type").into_iter().flatten() {
            if t != "custom" && t != "builtin" {
                return Err(ApiError::invalid(format!("invalid filter: 'type'='{t}'")));
            }
        }
        let in_use = self.networks_in_use();
        let mut out = Vec::new();
        for n in self.net.all() {
            let any = |k: &str, ok: &dyn Fn(&str) -> bool| {
                f.get(k).is_none_or(|v| v.iter().any(|x| ok(x)))
            };
            let keep = any("name", &|x| n.name.contains(x))
                && any("id", &|x| n.id.starts_with(x))
                && any("driver", &|x| n.driver == x)
                && any("scope", &|x| x == "local")
                && any("type", &|x| (x == "custom") == n.user_defined())
                && any("dangling", &|x| {
                    let dangling = n.user_defined() && !in_use.contains(&n.id);
                    (x == "true" || x == "1") == dangling
                })
                && label_matches(&n.labels, f.get("label").map(Vec::as_slice).unwrap_or(&[]));
            if keep {
                out.push(self.network_json(&n, false));
            }
        }
        Ok(out)
    }

    pub fn inspect_network(&self, key: &str) -> ApiResult<Value> {
        let n = self.net.get(key)?;
        Ok(self.network_json(&n, true))
    }

    pub fn create_network(&self, req: CreateRequest) -> ApiResult<(String, String)> {
        let n = self.net.create(req)?;
        self.events
            .emit("network", "create", &n.id, net_attrs(&n, None));
        Ok((n.id, String::new()))
    }

    pub fn remove_network(&self, key: &str) -> ApiResult<()> {
        let n = self.net.get(key)?;
        let users: Vec<String> = self
            .all()
            .iter()
            .filter(|c| c.rec().endpoints.values().any(|e| e.network_id == n.id))
            .map(|c| c.rec().name.clone())
            .collect();
        if !n.user_defined() {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "error while removing network: network {} has active endpoints (name:{:?} id:{:?})",
                    n.name,
                    users.join(","),
                    &n.id[..12]
                ),
            ));
        }
        self.net.remove(&n)?;
        self.events
            .emit("network", "destroy", &n.id, net_attrs(&n, None));
        Ok(())
    }

    /// `POST /networks/prune`: user-defined networks without endpoints.
    pub fn prune_networks(&self, f: &Filters) -> ApiResult<Vec<String>> {
        for k in f.keys() {
            if k != "label" && k != "until" {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let until = match f.get("until").and_then(|v| v.first()) {
            Some(u) => Some(parse_until(u)?),
            None => None,
        };
        let in_use = self.networks_in_use();
        let mut gone = Vec::new();
        for n in self.net.all() {
            if !n.user_defined() || in_use.contains(&n.id) {
                continue;
            }
            if !label_matches(&n.labels, f.get("label").map(Vec::as_slice).unwrap_or(&[])) {
                continue;
            }
            if let (Some(u), Some(t)) = (until, super::parse_time(&n.created)) {
                if t.timestamp_nanos_opt().unwrap_or(0) as i128 >= u {
                    continue;
                }
            }
            self.net.remove(&n)?;
            self.events
                .emit("network", "destroy", &n.id, net_attrs(&n, None));
            gone.push(n.name.clone());
        }
        Ok(gone)
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect(
        self: &std::sync::Arc<Self>,
        key: &str,
        container: &str,
        config: Option<&Value>,
    ) -> ApiResult<()> {
        let n = self.net.get(key)?;
        let c = self.get(container)?;
        let _op = c.op.lock().await;
        let hc_mode = c.rec().host_config.network_mode.clone();
        if matches!(mode(&hc_mode), Mode::Host | Mode::None | Mode::Container(_)) || !n.is_bridge()
        {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                "container sharing network namespace with another container or host cannot be connected to any other network",
            ));
        }
        if c.rec().endpoints.contains_key(&n.name) {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "endpoint with name {} already exists in network {}",
                    c.rec().name,
                    n.name
                ),
            ));
        }
        // The same checks as at create, for this one network.
        let mut hc = berth_api::HostConfig {
            network_mode: n.name.clone(),
            ..Default::default()
        };
        hc.other.clear();
        let nc =
            json!({ "EndpointsConfig": { n.name.clone(): config.cloned().unwrap_or(json!({})) } });
        let mut planned = self.plan_endpoints(&hc, Some(&nc))?;
        let ep = planned.remove(&n.name).unwrap_or(Endpoint {
            network_id: n.id.clone(),
            ..Endpoint::default()
        });
        if c.is_running() {
            let (ns, mut inner) = container_netns(c.rec().state.pid)?;
            let mut host =
                Netlink::new().map_err(|e| ApiError::internal(format!("netlink: {e}")))?;
            let taken: Vec<String> = c
                .rec()
                .endpoints
                .values()
                .map(|e| e.ifname.clone())
                .collect();
            let ifname = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !taken.contains(n))
                .expect("an unused name");
            let mut allocated = Vec::new();
            let mac = ep.want_mac.clone();
            let live = match self.attach_endpoint(
                &mut host,
                &mut inner,
                ns.as_fd(),
                &n,
                &ep,
                &ifname,
                false,
                mac,
                &mut allocated,
            ) {
                Ok(l) => l,
                Err(e) => {
                    for (net, ip) in allocated {
                        self.net.release(&net, ip);
                    }
                    let _ = inner.delete_link(&ifname);
                    return Err(e);
                }
            };
            // The container's /etc/hosts learns its new address.
            let hosts = self.paths.container_dir(&c.id).join("hosts");
            if let (Some(ip), Ok(mut text)) = (live.ipv4, std::fs::read_to_string(&hosts)) {
                text.push_str(&format!("{ip}\t{}\n", c.rec().config.hostname));
                let _ = std::fs::write(&hosts, text);
            }
            let had_dns = self.dns_tasks().contains_key(&c.id);
            c.rec().endpoints.insert(n.name.clone(), live);
            if n.user_defined() && !had_dns {
                self.start_dns(&c.id, ns.as_fd());
            }
        } else {
            c.rec().endpoints.insert(n.name.clone(), ep);
        }
        self.persist(&c)?;
        self.events
            .emit("network", "connect", &n.id, net_attrs(&n, Some(&c.id)));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect(&self, key: &str, container: &str, _force: bool) -> ApiResult<()> {
        let n = self.net.get(key)?;
        let c = self.get(container)?;
        let _op = c.op.lock().await;
        let Some(ep) = c.rec().endpoints.get(&n.name).cloned() else {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!("container {} is not connected to network {}", c.id, n.name),
            ));
        };
        if !n.is_bridge() {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "container cannot be disconnected from the {} network",
                    n.name
                ),
            ));
        }
        if c.is_running() && !ep.ifname.is_empty() {
            let (_ns, mut inner) = container_netns(c.rec().state.pid)?;
            inner
                .delete_link(&ep.ifname)
                .map_err(|e| ApiError::internal(format!("removing {}: {e}", ep.ifname)))?;
            for ip in [ep.ipv4, ep.ipv6].into_iter().flatten() {
                self.net.release(&n.id, ip);
            }
        }
        let still_dns = {
            let mut r = c.rec();
            r.endpoints.remove(&n.name);
            r.endpoints
                .values()
                .filter(|e| e.ipv4.is_some())
                .filter_map(|e| self.net.find(&e.network_id))
                .any(|n| n.user_defined())
        };
        if !still_dns {
            self.stop_dns(&c.id);
        }
        self.persist(&c)?;
        self.events
            .emit("network", "disconnect", &n.id, net_attrs(&n, Some(&c.id)));
        Ok(())
    }
}

/// A prune's `until`: Unix time, RFC 3339, or a duration before now ("24h", "10m").
fn parse_until(s: &str) -> ApiResult<i128> {
    if let Some(t) = super::logs::parse_unix_nanos(s) {
        return Ok(t);
    }
    if let Some(t) = super::parse_time(s) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0) as i128);
    }
    let unit = s.chars().last().unwrap_or(' ');
    let secs = match (s[..s.len().saturating_sub(1)].parse::<i128>(), unit) {
        (Ok(n), 's') => n,
        (Ok(n), 'm') => n * 60,
        (Ok(n), 'h') => n * 3600,
        _ => {
            return Err(ApiError::invalid(format!(
                "invalid filter 'until={s}': use a timestamp or a duration such as 24h"
            )))
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    Ok(now - secs * 1_000_000_000)
}

/// A running container's network namespace (its init's), and a netlink socket in it.
fn container_netns(pid: i64) -> ApiResult<(std::fs::File, Netlink)> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| {
        ApiError::internal(format!("opening the container's network namespace: {e}"))
    })?;
    let inner = Netlink::in_namespace(ns.as_fd())
        .map_err(|e| ApiError::internal(format!("netlink: {e}")))?;
    Ok((ns, inner))
}

fn net_attrs(n: &NetRecord, container: Option<&str>) -> serde_json::Map<String, Value> {
    let mut a = serde_json::Map::new();
    a.insert("name".into(), n.name.clone().into());
    a.insert("type".into(), n.driver.clone().into());
    if let Some(c) = container {
        a.insert("container".into(), c.to_string().into());
    }
    a
}
