//! A container's networking: which networks it joins (decided at create), the
//! namespace, veth pairs, addresses, published ports and /etc files made for each
//! start, and their release at exit.

use crate::daemon::container::record::{Container, Endpoint, PublishedPort, Record};
use crate::daemon::container::{Containers, Error};
use crate::daemon::network::{NetRecord, BRIDGE, HOST, NONE};
use crate::error::{ApiError, ApiResult};
use berth_api::{EndpointSettings, NetworkingConfig};
use berth_net::netlink::{self, Netlink};
use berth_net::nft::PortRule;
use berth_runtime::spec::NetworkMode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};

/// What a start gets from the network side, handed to the shim.
pub struct NetPrep {
    pub mode: NetworkMode,
    /// The namespace to join (NetworkMode::Join).
    pub netns: Option<OwnedFd>,
    /// Sockets reserving the published host ports.
    pub held: Vec<OwnedFd>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub ports: Vec<PublishedPort>,
    pub rules: Vec<PortRule>,
    /// Held sockets the shim forwards itself (IPv6 to a container without IPv6).
    pub proxies: Vec<berth_runtime::spec::PortProxy>,
    /// The embedded DNS server's sockets, on user-defined networks.
    pub dns: Option<crate::daemon::container::dns::Sockets>,
    /// Release what was allocated when the start fails after this.
    allocated: Vec<(String, IpAddr)>,
}

/// `HostConfig.NetworkMode` as berth acts on it.
pub enum Mode<'a> {
    Bridge,
    None,
    Host,
    Container(&'a str),
    Named(&'a str),
}

pub fn mode(network_mode: &str) -> Mode<'_> {
    match network_mode {
        "" | "default" | BRIDGE => Mode::Bridge,
        NONE => Mode::None,
        HOST => Mode::Host,
        m => match m.strip_prefix("container:") {
            Some(c) => Mode::Container(c),
            None => Mode::Named(m),
        },
    }
}

pub(super) fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Parses "80/tcp" (the protocol defaults to tcp).
pub fn parse_port_proto(s: &str) -> ApiResult<(u16, String)> {
    let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let port: u16 = p
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::invalid(format!("invalid port {s:?}")))?;
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(ApiError::invalid(format!(
            "invalid protocol {proto:?} in port {s:?}: use tcp, udp or sctp"
        )));
    }
    Ok((port, proto))
}

/// One port binding asked for: container port and protocol, host address and port
/// (0: any free one).
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub container_port: u16,
    pub proto: String,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
}

/// The port bindings of `PortBindings` and, with `PublishAllPorts`, every exposed
/// port not bound explicitly (to a random host port).
pub fn bindings(r: &Record) -> ApiResult<Vec<Binding>> {
    let mut out = Vec::new();
    let pb = r
        .host_config
        .other
        .get("PortBindings")
        .and_then(Value::as_object);
    for (key, list) in pb.into_iter().flatten() {
        let (container_port, proto) = parse_port_proto(key)?;
        let list = list.as_array().cloned().unwrap_or_default();
        let list = if list.is_empty() {
            vec![json!({})]
        } else {
            list
        };
        for b in list {
            let ip = b.get("HostIp").and_then(Value::as_str).unwrap_or("");
            let port = b.get("HostPort").and_then(Value::as_str).unwrap_or("");
            let host_ip = if ip.is_empty() {
                None
            } else {
                Some(ip.parse::<IpAddr>().map_err(|_| {
                    ApiError::invalid(format!("invalid host IP {ip:?} for port {key}"))
                })?)
            };
            let host_port = if port.is_empty() {
                0
            } else {
                port.parse::<u16>().map_err(|_| {
                    ApiError::invalid(format!("invalid host port {port:?} for port {key}"))
                })?
            };
            out.push(Binding {
                container_port,
                proto: proto.clone(),
                host_ip,
                host_port,
            });
        }
    }
    if r.host_config
        .other
        .get("PublishAllPorts")
        .and_then(Value::as_bool)
        == Some(true)
    {
        let exposed = r.config.exposed_ports.clone().unwrap_or_default();
        for key in exposed.keys() {
            let (container_port, proto) = parse_port_proto(key)?;
            if !out
                .iter()
                .any(|b| b.container_port == container_port && b.proto == proto)
            {
                out.push(Binding {
                    container_port,
                    proto,
                    host_ip: None,
                    host_port: 0,
                });
            }
        }
    }
    Ok(out)
}

/// Whether the host has IPv6 at all (an address on some interface).
fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| !t.trim().is_empty())
}

/// Binds a socket on the host port (listening, for TCP), so that nothing else can
/// take the port while the container runs, and learns a random port's number.
/// `backlog`: 1 for a pure reservation, more for a socket the shim serves.
fn reserve(b: &Binding, backlog: i32) -> Result<(OwnedFd, u16, IpAddr), Error> {
    use rustix::net::{AddressFamily, SocketAddrAny, SocketFlags, SocketType};
    let ip = b.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let family = if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let kind = match b.proto.as_str() {
        "udp" => SocketType::DGRAM,
        _ => SocketType::STREAM,
    };
    let shown = || format!("{}:{}/{}", fmt_ip(&ip), b.host_port, b.proto);
    let fd =
        rustix::net::socket_with(family, kind, SocketFlags::CLOEXEC, None).map_err(|source| {
            Error::PortSocket {
                binding: shown(),
                source,
            }
        })?;
    // As Docker's proxy listens: a connection of an earlier container still in
    // TIME_WAIT on this port must not keep the next one from publishing it.
    // The socket then listens (below), which no other socket can bind beside,
    // SO_REUSEADDR or not. (TCP only: on UDP the option would let two sockets
    // share the port.)
    if kind == SocketType::STREAM {
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true).map_err(|source| {
            Error::PortSocket {
                binding: shown(),
                source,
            }
        })?;
    }
    // [::] is IPv6's own: 0.0.0.0 is reserved separately.
    if family == AddressFamily::INET6 {
        rustix::net::sockopt::set_ipv6_v6only(&fd, true).map_err(|source| Error::PortSocket {
            binding: shown(),
            source,
        })?;
    }
    let addr = std::net::SocketAddr::new(ip, b.host_port);
    rustix::net::bind(&fd, &addr).map_err(|e| {
        let why = if e == rustix::io::Errno::ADDRINUSE {
            "address already in use".to_string()
        } else {
            e.to_string()
        };
        Error::PortBind {
            binding: shown(),
            why,
        }
    })?;
    if kind == SocketType::STREAM {
        // Never accepted from: the container's traffic is redirected (DNAT)
        // before it could reach this socket.
        rustix::net::listen(&fd, backlog).map_err(|source| Error::PortSocket {
            binding: shown(),
            source,
        })?;
    }
    let port = match rustix::net::getsockname(&fd) {
        Ok(a) => std::net::SocketAddr::try_from(a as SocketAddrAny)
            .map(|a| a.port())
            .unwrap_or(b.host_port),
        Err(_) => b.host_port,
    };
    Ok((fd, port, ip))
}

fn fmt_ip(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    }
}

/// An IPv6 host address for a container without IPv6, with the proxy off.
fn publish_err_v6(r: &Record) -> ApiError {
    ApiError::invalid(format!(
        "cannot publish a port of container {} on an IPv6 host address: it has no IPv6 address and the userland proxy is disabled",
        r.name.trim_start_matches('/')
    ))
}

/// A random veth name on the host side (Docker's style: "veth" and 7 hex digits).
fn veth_name() -> String {
    format!("veth{}", &crate::daemon::ids::new_id()[..7])
}

impl Containers {
    /// Decides at create which networks a container joins, from `NetworkMode` and
    /// `NetworkingConfig.EndpointsConfig`; checks that they exist and that the
    /// requested addresses fit.
    pub(super) fn plan_endpoints(
        &self,
        hc: &berth_api::HostConfig,
        networking: Option<&NetworkingConfig>,
    ) -> ApiResult<BTreeMap<String, Endpoint>> {
        // "default" is the default bridge, as in Docker.
        let configs: BTreeMap<String, &EndpointSettings> = networking
            .and_then(|n| n.endpoints_config.as_ref())
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let k = if k == "default" { BRIDGE } else { k.as_str() };
                (k.to_string(), v)
            })
            .collect();
        let mut out = BTreeMap::new();
        let primary: Option<NetRecord> = match mode(&hc.network_mode) {
            Mode::Container(key) => {
                self.get(key)?;
                // The client names the mode itself as an endpoint; any other is a conflict.
                if configs.keys().any(|k| k != &hc.network_mode) {
                    return Err(ApiError::invalid(
                        "conflicting options: a container that shares another's network namespace cannot join networks",
                    ));
                }
                return Ok(out);
            }
            // Without a default bridge (--bridge none) the start fails, as in Docker.
            Mode::Bridge if self.net.find(BRIDGE).is_none() => {
                out.insert(BRIDGE.to_string(), Endpoint::default());
                return Ok(out);
            }
            Mode::Bridge => self.net.find(BRIDGE),
            Mode::None => Some(self.net.get(NONE)?),
            Mode::Host => Some(self.net.get(HOST)?),
            Mode::Named(n) => match self.net.find(n) {
                Some(net) => Some(net),
                None => {
                    // As in Docker, a missing network fails the start, not the create
                    // (a 404 at create would send the client off to pull the image).
                    out.insert(n.to_string(), Endpoint::default());
                    return Ok(out);
                }
            },
        };
        let mut nets: Vec<(NetRecord, Option<&EndpointSettings>)> = Vec::new();
        if let Some(p) = primary {
            // The mode's network is configured by its entry, keyed by name or id.
            let cfg = configs
                .iter()
                .find(|(k, _)| {
                    k.as_str() == p.name || k.as_str() == p.id || p.id.starts_with(k.as_str())
                })
                .map(|(_, v)| *v);
            nets.push((p, cfg));
        }
        for (k, v) in &configs {
            let n = self.net.get(k)?;
            if nets.iter().any(|(x, _)| x.id == n.id) {
                continue;
            }
            nets.push((n, Some(v)));
        }
        let special = nets.iter().any(|(n, _)| !n.is_bridge());
        if special && nets.len() > 1 {
            return Err(ApiError::invalid(
                "container cannot be connected to host or none networks and others",
            ));
        }
        for (n, cfg) in nets {
            let mut ep = Endpoint {
                network_id: n.id.clone(),
                ..Endpoint::default()
            };
            if let Some(cfg) = cfg {
                ep.aliases = cfg.aliases.clone().unwrap_or_default();
                ep.links = cfg.links.clone().unwrap_or_default();
                let want = |v: Option<&String>, k: &str| -> ApiResult<Option<IpAddr>> {
                    match v.filter(|s| !s.is_empty()) {
                        None => Ok(None),
                        Some(s) => s.parse().map(Some).map_err(|_| {
                            ApiError::invalid(format!("invalid IP address {s:?} ({k})"))
                        }),
                    }
                };
                let ipam = cfg.ipam_config.as_ref();
                ep.want_ipv4 = want(ipam.and_then(|i| i.ipv4_address.as_ref()), "IPv4Address")?;
                ep.want_ipv6 = want(ipam.and_then(|i| i.ipv6_address.as_ref()), "IPv6Address")?;
                ep.want_mac = cfg.mac_address.clone().filter(|s| !s.is_empty());
            }
            if ep.want_ipv4.is_some() || ep.want_ipv6.is_some() {
                if !n.user_defined() {
                    return Err(ApiError::invalid(
                        "user specified IP address is supported on user defined networks only",
                    ));
                }
                if let Some(ip) = ep.want_ipv4 {
                    if !n.pool4().is_some_and(|p| p.subnet.contains(&ip)) || !ip.is_ipv4() {
                        return Err(ApiError::invalid(format!(
                            "no configured subnet or ip-range contain the IP address {ip}"
                        )));
                    }
                }
                if let Some(ip) = ep.want_ipv6 {
                    if !n.pool6().is_some_and(|p| p.subnet.contains(&ip)) {
                        return Err(ApiError::invalid(format!(
                            "no configured subnet or ip-range contain the IP address {ip}"
                        )));
                    }
                }
            }
            if !ep.aliases.is_empty() && !n.user_defined() {
                return Err(ApiError::invalid(
                    "network-scoped aliases are only supported for user-defined networks",
                ));
            }
            if let Some(m) = &ep.want_mac {
                if netlink::parse_mac(m).is_none() {
                    return Err(ApiError::invalid(format!("invalid MAC address {m:?}")));
                }
            }
            out.insert(n.name.clone(), ep);
        }
        Ok(out)
    }

    /// The network side of a start: namespace, interfaces, addresses, port
    /// reservations. Nothing is left behind on failure.
    pub(super) fn prepare_network(&self, r: &Record) -> ApiResult<NetPrep> {
        let mut prep = NetPrep {
            mode: NetworkMode::Private,
            netns: None,
            held: Vec::new(),
            endpoints: r.endpoints.clone(),
            ports: Vec::new(),
            rules: Vec::new(),
            proxies: Vec::new(),
            dns: None,
            allocated: Vec::new(),
        };
        match mode(&r.host_config.network_mode) {
            Mode::Host => {
                prep.mode = NetworkMode::Host;
                return Ok(prep);
            }
            Mode::None => return Ok(prep),
            Mode::Container(key) => {
                let other = self.get(key)?;
                let pid = other.rec().state.pid as i32;
                if !other.is_running() || pid <= 0 {
                    return Err(ApiError::conflict(format!(
                        "cannot join network namespace of a non running container: container {} is not running",
                        other.id
                    )));
                }
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|source| {
                    Error::Namespace {
                        id: other.id.clone(),
                        step: "opening",
                        source,
                    }
                })?;
                prep.mode = NetworkMode::Join;
                prep.netns = Some(ns.into());
                return Ok(prep);
            }
            Mode::Bridge | Mode::Named(_) => {}
        }
        let result = self.build_namespace(r, &mut prep);
        if let Err(e) = result {
            self.release_prep(&prep);
            return Err(e);
        }
        Ok(prep)
    }

    fn build_namespace(&self, r: &Record, prep: &mut NetPrep) -> ApiResult<()> {
        let (ns, mut inner) = berth_runtime::sys::in_new_netns(Netlink::new)
            .map_err(|source| Error::NewNamespace { source })?;
        // lo is always 1 in a new namespace
        inner.set_up(1).map_err(|source| Error::Link {
            ifname: "lo".into(),
            source,
        })?;
        let mut host = Netlink::new().map_err(|source| Error::Netlink { source })?;
        // The mode's network first: it gets eth0 and the default route.
        let primary = match mode(&r.host_config.network_mode) {
            Mode::Named(n) => self.net.get(n)?.name,
            _ => BRIDGE.to_string(),
        };
        let mut order: Vec<String> = prep.endpoints.keys().cloned().collect();
        order.sort_by_key(|n| *n != primary);
        // --mac-address of older API versions (Config.MacAddress).
        let legacy_mac = r.config.mac_address.clone().filter(|s| !s.is_empty());
        for (i, name) in order.iter().enumerate() {
            let ifname = format!("eth{i}");
            let mut ep = prep.endpoints.get(name).cloned().unwrap_or_default();
            let net = if ep.network_id.is_empty() {
                self.net.get(name)?
            } else {
                self.net.get(&ep.network_id)?
            };
            ep.network_id = net.id.clone();
            let want_mac = ep
                .want_mac
                .clone()
                .or(if i == 0 { legacy_mac.clone() } else { None });
            let live = self.attach_endpoint(
                &mut host,
                &mut inner,
                ns.as_fd(),
                &net,
                &ep,
                &ifname,
                i == 0,
                want_mac,
                &mut prep.allocated,
            )?;
            prep.endpoints.insert(name.clone(), live);
        }
        if self.needs_dns(prep) {
            prep.dns = Some(crate::daemon::container::dns::bind_in(ns.as_fd()).map_err(
                |source| Error::Dns {
                    id: r.id.clone(),
                    source,
                },
            )?);
        }
        prep.netns = Some(ns);
        prep.mode = NetworkMode::Join;
        // Published ports go to the addresses on the first network, on that
        // network's host address when a binding names none.
        // (Nothing of this is looked up for a container that publishes nothing.)
        let bindings = bindings(r)?;
        let first = order.first().and_then(|n| prep.endpoints.get(n));
        let targets = (first.and_then(|e| e.ipv4), first.and_then(|e| e.ipv6));
        let (default_ip, ipv6) = if bindings.is_empty() {
            (None, false)
        } else {
            (
                first
                    .and_then(|e| self.net.find(&e.network_id))
                    .and_then(|n| n.host_binding()),
                host_has_ipv6(),
            )
        };
        let publish_err = |e: Error| -> ApiError {
            Error::Publish {
                name: r.name.clone(),
                id: r.id.clone(),
                source: Box::new(e),
            }
            .into()
        };
        for mut b in bindings {
            b.host_ip = b.host_ip.or(default_ip);
            let wildcard = b.host_ip.is_none();
            let port = self
                .publish(prep, &b, targets)
                .map_err(|e| e.map_or_else(|| publish_err_v6(r), publish_err))?;
            // As Docker: a port published on every address is on IPv6's too, to
            // the container's IPv6 address or, without one, through the proxy.
            let v6_route = targets.1.is_some() || self.net.config.userland_proxy;
            if wildcard && ipv6 && v6_route && b.proto != "sctp" {
                let v6 = Binding {
                    host_ip: Some(IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)),
                    host_port: port,
                    ..b
                };
                self.publish(prep, &v6, targets)
                    .map_err(|e| e.map_or_else(|| publish_err_v6(r), publish_err))?;
            }
        }
        if prep.held.len() > berth_runtime::sys::MAX_PASSED_FDS - 8 {
            return Err(ApiError::invalid(format!(
                "too many published ports: at most {}",
                berth_runtime::sys::MAX_PASSED_FDS - 8
            )));
        }
        Ok(())
    }

    /// Reserves one binding's host port and routes it to the container: NAT within
    /// a family, and on IPv6 the shim's proxy too (loopback, and a container with
    /// only IPv4). Returns the host port; Err(None) when only the proxy could
    /// route it and it is off.
    fn publish(
        &self,
        prep: &mut NetPrep,
        b: &Binding,
        (target4, target6): (Option<IpAddr>, Option<IpAddr>),
    ) -> Result<u16, Option<Error>> {
        let v6 = b.host_ip.is_some_and(|ip| ip.is_ipv6());
        // IPv6 has no route from ::1 into a bridge, and no NAT to IPv4: the shim
        // serves the socket (towards the container's IPv6 address when it has
        // one), and a NAT rule takes what is not loopback straight there. Without
        // berth's firewall (`iptables: false`) the shim serves every port.
        let no_nat = !self.net.config.firewall;
        let proxy_target = if v6 { target6.or(target4) } else { target4 };
        let proxied = proxy_target.is_some() && (no_nat || (v6 && self.net.config.userland_proxy));
        let nat6 =
            !no_nat && v6 && target6.is_some() && !b.host_ip.is_some_and(|ip| ip.is_loopback());
        if v6 && !proxied && !nat6 {
            return Err(None);
        }
        let (fd, port, ip) = reserve(b, if proxied { 511 } else { 1 }).map_err(Some)?;
        let held = prep.held.len() as u32;
        prep.held.push(fd);
        prep.ports.push(PublishedPort {
            container_port: b.container_port,
            proto: b.proto.clone(),
            host_ip: ip.to_string(),
            host_port: port,
        });
        if let Some(t) = proxy_target.filter(|_| proxied) {
            prep.proxies.push(berth_runtime::spec::PortProxy {
                held,
                proto: b.proto.clone(),
                target: std::net::SocketAddr::new(t, b.container_port),
            });
        }
        let nat_target = if v6 {
            target6.filter(|_| nat6)
        } else {
            target4
        };
        if let Some(t) = nat_target {
            prep.rules.push(PortRule {
                proto: b.proto.clone(),
                host_ip: b.host_ip.filter(|ip| !ip.is_unspecified()),
                host_port: port,
                container_ip: t,
                container_port: b.container_port,
            });
        }
        Ok(port)
    }

    /// Creates the veth pair of one endpoint, with its addresses (and, for the
    /// first, the default route), and returns the endpoint with what it got.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attach_endpoint(
        &self,
        host: &mut Netlink,
        inner: &mut Netlink,
        ns: std::os::fd::BorrowedFd<'_>,
        net: &NetRecord,
        ep: &Endpoint,
        ifname: &str,
        primary: bool,
        want_mac: Option<String>,
        allocated: &mut Vec<(String, IpAddr)>,
    ) -> ApiResult<Endpoint> {
        let ierr = |source: netlink::Error| Error::Link {
            ifname: ifname.to_string(),
            source,
        };
        let mut live = ep.clone();
        live.clear_live();
        let (ip4, pool4) = self.net.allocate(&net.id, true, ep.want_ipv4)?;
        allocated.push((net.id.clone(), ip4));
        let v6 = if net.enable_ipv6 {
            let (ip6, pool6) = self.net.allocate(&net.id, false, ep.want_ipv6)?;
            allocated.push((net.id.clone(), ip6));
            Some((ip6, pool6))
        } else {
            None
        };
        let mac = match want_mac.as_deref().and_then(netlink::parse_mac) {
            Some(m) => m,
            None => berth_net::cidr::mac_for(&ip4),
        };
        if net.is_bridge() {
            let bridge = match host.link_index(&net.bridge).map_err(ierr)? {
                Some(i) => i,
                None => {
                    self.net.restore_bridge(net)?;
                    host.link_index(&net.bridge).map_err(ierr)?.ok_or_else(|| {
                        Error::BridgeMissing {
                            bridge: net.bridge.clone(),
                            network: net.name.clone(),
                        }
                    })?
                }
            };
            let veth = veth_name();
            host.create_veth(&veth, bridge, ifname, ns, Some(mac), net.mtu())
                .map_err(ierr)?;
            if !net.icc() {
                // Before the container's end is up: no frame ever passes between two
                // containers of this network.
                let port = host.link_index(&veth).map_err(ierr)?.ok_or_else(|| {
                    Error::InterfaceMissing {
                        ifname: veth.clone(),
                    }
                })?;
                host.isolate_port(port).map_err(ierr)?;
            }
        } else {
            // macvlan or ipvlan: the container's interface hangs off the parent.
            let parent_name = net.options.get("parent").cloned().unwrap_or_default();
            let parent = host
                .link_index(&parent_name)
                .map_err(ierr)?
                .ok_or_else(|| Error::InterfaceMissing {
                    ifname: parent_name.clone(),
                })?;
            let mode = crate::daemon::network::sublink_mode(&net.driver, &net.options)?;
            // ipvlan interfaces share the parent's MAC address.
            let own_mac = (net.driver == "macvlan").then_some(mac);
            host.create_sublink(&net.driver, ifname, parent, mode, ns, own_mac, net.mtu())
                .map_err(ierr)?;
        }
        let index =
            inner
                .link_index(ifname)
                .map_err(ierr)?
                .ok_or_else(|| Error::InterfaceMissing {
                    ifname: ifname.to_string(),
                })?;
        inner.set_up(index).map_err(ierr)?;
        inner
            .add_address(index, ip4, pool4.subnet.prefix)
            .map_err(ierr)?;
        if let Some((ip6, pool6)) = &v6 {
            inner
                .add_address(index, *ip6, pool6.subnet.prefix)
                .map_err(ierr)?;
        }
        if primary && !net.internal {
            inner.add_default_route(pool4.gateway).map_err(ierr)?;
            if let Some((_, pool6)) = &v6 {
                inner.add_default_route(pool6.gateway).map_err(ierr)?;
            }
        }
        live.endpoint_id = crate::daemon::ids::new_id();
        live.ipv4 = Some(ip4);
        live.prefix4 = pool4.subnet.prefix;
        live.gateway4 = (!net.internal).then_some(pool4.gateway);
        if let Some((ip6, pool6)) = v6 {
            live.ipv6 = Some(ip6);
            live.prefix6 = pool6.subnet.prefix;
            live.gateway6 = (!net.internal).then_some(pool6.gateway);
        }
        live.mac = netlink::format_mac(&mac);
        live.ifname = ifname.to_string();
        Ok(live)
    }

    /// Whether the container is on a user-defined network (which has DNS).
    pub(super) fn needs_dns(&self, prep: &NetPrep) -> bool {
        prep.endpoints
            .values()
            .filter(|e| e.ipv4.is_some())
            .filter_map(|e| self.net.find(&e.network_id))
            .any(|n| n.user_defined())
    }

    fn release_prep(&self, prep: &NetPrep) {
        for (net, ip) in &prep.allocated {
            self.net.release(net, *ip);
        }
    }

    /// A start failed after `prepare_network`: give back what it took. The
    /// namespace (and the veths in it) go when `prep` is dropped.
    pub(super) fn abandon_network(&self, prep: NetPrep) {
        self.release_prep(&prep);
    }

    /// The container runs: record its endpoints and ports, and program the ports.
    pub(super) fn commit_network(&self, c: &Container, prep: &NetPrep) -> ApiResult<()> {
        {
            let mut r = c.rec();
            r.endpoints = prep.endpoints.clone();
            r.ports = prep.ports.clone();
        }
        self.network_events(c, "connect");
        self.net.set_ports(&c.id, prep.rules.clone())
    }

    /// The container exited: its addresses and ports are free again.
    /// `network connect` or `disconnect` for each network a container joins or
    /// leaves as it starts or stops, as Docker emits them.
    fn network_events(&self, c: &Container, action: &str) {
        let ids: Vec<String> = c
            .rec()
            .endpoints
            .values()
            .map(|e| e.network_id.clone())
            .filter(|id| !id.is_empty())
            .collect();
        for id in ids {
            if let Some(n) = self.net.find(&id) {
                self.events.emit(
                    "network",
                    action,
                    &n.id,
                    crate::daemon::network::event_attrs(&n, Some(&c.id)),
                );
            }
        }
    }

    pub(super) fn release_network(&self, c: &Container) {
        self.network_events(c, "disconnect");
        let had_ports = {
            let mut r = c.rec();
            for ep in r.endpoints.values_mut() {
                if let Some(ip) = ep.ipv4 {
                    self.net.release(&ep.network_id, ip);
                }
                if let Some(ip) = ep.ipv6 {
                    self.net.release(&ep.network_id, ip);
                }
                ep.clear_live();
            }
            !std::mem::take(&mut r.ports).is_empty()
        };
        self.stop_dns(&c.id);
        if had_ports {
            if let Err(e) = self.net.set_ports(&c.id, Vec::new()) {
                tracing::error!(container = %c.id, error = %e, "removing port rules");
            }
        }
    }

    /// At daemon start: the addresses and ports of containers still running.
    pub(super) fn restore_network(&self, r: &Record) {
        for ep in r.endpoints.values() {
            for ip in [ep.ipv4, ep.ipv6].into_iter().flatten() {
                self.net.claim(&ep.network_id, ip);
            }
        }
        let target = r
            .endpoints
            .values()
            .find(|e| e.ifname == "eth0")
            .and_then(|e| e.ipv4);
        if let Some(t) = target {
            let rules = r
                .ports
                .iter()
                .map(|p| PortRule {
                    proto: p.proto.clone(),
                    host_ip: p
                        .host_ip
                        .parse::<IpAddr>()
                        .ok()
                        .filter(|ip| !ip.is_unspecified()),
                    host_port: p.host_port,
                    container_ip: t,
                    container_port: p.container_port,
                })
                .collect();
            self.net.restore_ports(&r.id, rules);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::container::record::parse_link;

    #[test]
    fn ports_and_links_parse() {
        assert_eq!(parse_port_proto("80").unwrap(), (80, "tcp".to_string()));
        assert_eq!(parse_port_proto("53/UDP").unwrap(), (53, "udp".to_string()));
        assert!(parse_port_proto("0/tcp").is_err());
        assert!(parse_port_proto("80/icmp")
            .unwrap_err()
            .message
            .contains("icmp"));
        assert!(parse_port_proto("x").is_err());
        assert_eq!(parse_link("db:database"), ("db", "database"));
        assert_eq!(parse_link("/db:/web/database"), ("db", "database"));
        assert_eq!(parse_link("db"), ("db", "db"));
    }
}
