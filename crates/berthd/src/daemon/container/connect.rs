//! Connecting a container to a network and disconnecting it, live or stopped: the
//! container's endpoints are the container service's; the network service hands
//! out addresses.

use super::endpoint::{mode, Mode};
use super::record::Endpoint;
use super::{Containers, Error};
use crate::daemon::network::event_attrs;
use crate::error::{ApiError, ApiResult};
use berth_api::ErrorKind;
use berth_api::{EndpointSettings, NetworkingConfig};
use berth_net::netlink::Netlink;
use std::os::fd::AsFd;

impl Containers {
    /// `POST /networks/{id}/connect`.
    pub async fn connect(
        self: &std::sync::Arc<Self>,
        key: &str,
        container: &str,
        config: Option<&EndpointSettings>,
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
        let nc = NetworkingConfig {
            endpoints_config: Some([(n.name.clone(), config.cloned().unwrap_or_default())].into()),
        };
        let mut planned = self.plan_endpoints(&hc, Some(&nc))?;
        let ep = planned.remove(&n.name).unwrap_or(Endpoint {
            network_id: n.id.clone(),
            ..Endpoint::default()
        });
        if c.is_running() {
            let (ns, mut inner) = container_netns(&c.id, c.rec().state.pid)?;
            let mut host = Netlink::new().map_err(|source| Error::Netlink { source })?;
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
            .emit("network", "connect", &n.id, event_attrs(&n, Some(&c.id)));
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
            let (_ns, mut inner) = container_netns(&c.id, c.rec().state.pid)?;
            inner
                .delete_link(&ep.ifname)
                .map_err(|source| Error::Unlink {
                    id: c.id.clone(),
                    ifname: ep.ifname.clone(),
                    source,
                })?;
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
            .emit("network", "disconnect", &n.id, event_attrs(&n, Some(&c.id)));
        Ok(())
    }
}

/// A running container's network namespace (its init's), and a netlink socket in it.
fn container_netns(id: &str, pid: i64) -> ApiResult<(std::fs::File, Netlink)> {
    let step = |step, source| Error::Namespace {
        id: id.to_string(),
        step,
        source,
    };
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| step("opening", e))?;
    let inner = Netlink::in_namespace(ns.as_fd()).map_err(|e| step("entering", e))?;
    Ok((ns, inner))
}
