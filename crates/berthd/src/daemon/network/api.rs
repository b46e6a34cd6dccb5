//! The network API: list, inspect, create, remove and prune. Which containers are
//! on a network comes from [`NetworkUsers`]; connecting and disconnecting a
//! container is the container service's (it owns the container's endpoints).

use super::{event_attrs, Attachment, NetRecord, NetworkUsers, Networks};
use crate::daemon::time::parse_time;
use crate::error::{ApiError, ApiResult};
use berth_api::ErrorKind;
use berth_api::{
    ConfigReference, Ipam, IpamConfig, Network, NetworkContainer, NetworkCreateRequest,
    NetworkCreateResponse,
};
use std::collections::{BTreeMap, HashMap, HashSet};

type Filters = HashMap<String, Vec<String>>;

fn label_matches(labels: &BTreeMap<String, String>, want: &[String]) -> bool {
    want.iter().all(|l| match l.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(l),
    })
}

impl Networks {
    /// Wires the container service in (once, at start).
    pub fn set_users(&self, users: std::sync::Weak<dyn NetworkUsers>) {
        self.users.set(users);
    }

    fn attachments(&self) -> Vec<Attachment> {
        self.users.with(Vec::new(), |u| u.attachments())
    }

    /// A network as the API shows it; `endpoints` are its running containers'.
    fn view(&self, n: &NetRecord, endpoints: &[Attachment]) -> Network {
        let containers = endpoints
            .iter()
            .filter(|a| a.network_id == n.id && a.running)
            .map(|a| {
                (
                    a.container_id.clone(),
                    NetworkContainer {
                        name: a.container_name.clone(),
                        endpoint_id: a.endpoint_id.clone(),
                        mac_address: a.mac.clone(),
                        ipv4_address: a.ipv4.clone(),
                        ipv6_address: a.ipv6.clone(),
                    },
                )
            })
            .collect();
        let config = n
            .pools
            .iter()
            .map(|p| IpamConfig {
                subnet: p.subnet.to_string(),
                gateway: p.gateway.to_string(),
                ip_range: p.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                aux_address: (!p.aux.is_empty()).then(|| {
                    p.aux
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect()
                }),
            })
            .collect();
        Network {
            name: n.name.clone(),
            id: n.id.clone(),
            created: n.created.clone(),
            scope: "local".into(),
            driver: n.driver.clone(),
            enable_ipv4: n.is_bridge(),
            enable_ipv6: n.enable_ipv6,
            ipam: Ipam {
                driver: "default".into(),
                options: n.user_defined().then(BTreeMap::new),
                config,
            },
            internal: n.internal,
            attachable: n.attachable,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers,
            options: n.options.clone(),
            labels: n.labels.clone(),
        }
    }

    /// Networks with at least one endpoint (running or not).
    fn in_use(&self) -> HashSet<String> {
        self.attachments()
            .into_iter()
            .map(|a| a.network_id)
            .collect()
    }

    /// `GET /networks` with Docker's filters.
    pub fn list(&self, f: &Filters) -> ApiResult<Vec<Network>> {
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
        let in_use = self.in_use();
        let mut out = Vec::new();
        for n in self.all() {
            let any = |k: &str, ok: &dyn Fn(&str) -> bool| {
                f.get(k).is_none_or(|v| v.iter().any(|x| ok(x)))
            };
            let keep = crate::daemon::filter::regex_any(
                f.get("name").map(Vec::as_slice).unwrap_or(&[]),
                &n.name,
            ) && any("id", &|x| n.id.starts_with(x))
                && any("driver", &|x| n.driver == x)
                && any("scope", &|x| x == "local")
                && any("type", &|x| (x == "custom") == n.user_defined())
                && any("dangling", &|x| {
                    let dangling = n.user_defined() && !in_use.contains(&n.id);
                    (x == "true" || x == "1") == dangling
                })
                && label_matches(&n.labels, f.get("label").map(Vec::as_slice).unwrap_or(&[]));
            if keep {
                out.push(self.view(&n, &[]));
            }
        }
        Ok(out)
    }

    /// `GET /networks/{id}`.
    pub fn inspect(&self, key: &str) -> ApiResult<Network> {
        let n = self.get(key)?;
        Ok(self.view(&n, &self.attachments()))
    }

    /// `POST /networks/create`.
    pub fn create_api(&self, req: NetworkCreateRequest) -> ApiResult<NetworkCreateResponse> {
        let n = self.create(req)?;
        self.events
            .emit("network", "create", &n.id, event_attrs(&n, None));
        Ok(NetworkCreateResponse {
            id: n.id,
            warning: String::new(),
        })
    }

    /// `DELETE /networks/{id}`.
    pub fn remove_api(&self, key: &str) -> ApiResult<()> {
        let n = self.get(key)?;
        if !n.user_defined() {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        let mut users: Vec<String> = self
            .attachments()
            .into_iter()
            .filter(|a| a.network_id == n.id)
            .map(|a| a.container_name)
            .collect();
        users.dedup();
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
        self.remove(&n)?;
        self.events
            .emit("network", "destroy", &n.id, event_attrs(&n, None));
        Ok(())
    }

    /// `POST /networks/prune`: user-defined networks without endpoints.
    pub fn prune(&self, f: &Filters) -> ApiResult<Vec<String>> {
        for k in f.keys() {
            if k != "label" && k != "until" {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let until = match f.get("until").and_then(|v| v.first()) {
            Some(u) => Some(parse_until(u)?),
            None => None,
        };
        let in_use = self.in_use();
        let mut gone = Vec::new();
        for n in self.all() {
            if !n.user_defined() || in_use.contains(&n.id) {
                continue;
            }
            if !label_matches(&n.labels, f.get("label").map(Vec::as_slice).unwrap_or(&[])) {
                continue;
            }
            if let (Some(u), Some(t)) = (until, parse_time(&n.created)) {
                if t.timestamp_nanos_opt().unwrap_or(0) as i128 >= u {
                    continue;
                }
            }
            self.remove(&n)?;
            self.events
                .emit("network", "destroy", &n.id, event_attrs(&n, None));
            gone.push(n.name.clone());
        }
        Ok(gone)
    }
}

/// A prune's `until`: Unix time, RFC 3339, or a duration before now ("24h", "10m").
fn parse_until(s: &str) -> ApiResult<i128> {
    if let Some(t) = crate::daemon::time::parse_unix_nanos(s) {
        return Ok(t);
    }
    if let Some(t) = parse_time(s) {
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
