//! Networks: their records, the bridges behind them, address management, and
//! berth's nftables table. A container's own networking (namespace, veths, ports,
//! DNS) is the container service's (`container/endpoint.rs`); the API views are in
//! `api.rs`, address management in `ipam.rs`, `docker network create` in
//! `create.rs`.

mod api;
mod create;
mod hostfwd;
pub use create::sublink_mode;
mod ipam;

use crate::daemon::time::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use berth_net::cidr::{self, Subnet};
use berth_net::netlink::{self, Netlink};
use berth_net::nft::{self, PortRule, Ruleset};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// The predefined networks, as Docker names them.
pub const BRIDGE: &str = "bridge";
pub const HOST: &str = "host";
pub const NONE: &str = "none";

/// Docker's option naming the bridge interface of a network.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
const OPT_MTU: &str = "com.docker.network.driver.mtu";
const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";

/// Checks one bridge driver option's value as dockerd's bridge driver parses it.
fn check_option(key: &str, value: &str) -> ApiResult<()> {
    let bad = |why: &str| {
        Err(ApiError::invalid(format!(
            "failed to parse {key} value: {value} ({why})"
        )))
    };
    const BOOLS: [&str; 10] = [
        "true", "false", "1", "0", "t", "f", "TRUE", "FALSE", "True", "False",
    ];
    match key {
        OPT_ICC | OPT_MASQUERADE if !BOOLS.contains(&value) => bad("invalid syntax"),
        OPT_MTU => match value.parse::<i64>() {
            Err(_) => bad("invalid syntax"),
            Ok(n) if !(68..=65535).contains(&n) => Err(ApiError::invalid(format!(
                "invalid MTU number: {n} (between 68 and 65535)"
            ))),
            Ok(_) => Ok(()),
        },
        OPT_HOST_BINDING if value.parse::<IpAddr>().is_err() => bad("nil ip"),
        _ => Ok(()),
    }
}

fn parse_bool(v: &str) -> bool {
    matches!(v, "true" | "1" | "t" | "TRUE" | "True")
}

/// One IPAM pool of a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pool {
    pub subnet: Subnet,
    pub gateway: IpAddr,
    #[serde(default)]
    pub ip_range: Option<Subnet>,
    /// `--aux-address`: addresses named and kept out of allocation (a router, a
    /// host already on the segment).
    #[serde(default)]
    pub aux: BTreeMap<String, IpAddr>,
}

/// A network as berth keeps it (JSON under `<data-root>/network/<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetRecord {
    pub id: String,
    pub name: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// The bridge interface ("" for host and null).
    #[serde(default)]
    pub bridge: String,
    /// This data root's daemon made the bridge (it removes only those; another
    /// daemon may share one it found). Records from before this field: yes.
    #[serde(default = "made_by_default")]
    pub made_bridge: bool,
}

fn made_by_default() -> bool {
    true
}

impl NetRecord {
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// User-defined networks have DNS; the default bridge does not.
    pub fn user_defined(&self) -> bool {
        ![BRIDGE, HOST, NONE].contains(&self.name.as_str())
    }

    pub fn pool4(&self) -> Option<&Pool> {
        self.pools.iter().find(|p| p.subnet.is_ipv4())
    }

    pub fn pool6(&self) -> Option<&Pool> {
        self.pools.iter().find(|p| !p.subnet.is_ipv4())
    }

    /// The MTU of the bridge and its containers' interfaces, when the network sets
    /// one (`com.docker.network.driver.mtu`).
    pub fn mtu(&self) -> Option<u32> {
        self.options.get(OPT_MTU).and_then(|m| m.parse().ok())
    }

    /// Whether containers of this network may talk to each other
    /// (`com.docker.network.bridge.enable_icc`, on unless "false").
    pub fn icc(&self) -> bool {
        self.options.get(OPT_ICC).is_none_or(|v| parse_bool(v))
    }

    /// The host address ports are published on when a binding names none
    /// (`com.docker.network.bridge.host_binding_ipv4`; None: every address).
    pub fn host_binding(&self) -> Option<IpAddr> {
        self.options
            .get(OPT_HOST_BINDING)
            .and_then(|v| v.parse::<IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified())
    }

    fn firewall(&self) -> nft::Bridge {
        nft::Bridge {
            ifname: self.bridge.clone(),
            subnet: self.pool4().map(|p| p.subnet),
            internal: self.internal,
            masquerade: self
                .options
                .get(OPT_MASQUERADE)
                .is_none_or(|v| parse_bool(v)),
        }
    }
}

/// Daemon-wide network settings (dockerd's --bridge, --bip, default-address-pools,
/// --dns...).
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The default bridge's interface; None for `--bridge none`.
    pub bridge: Option<String>,
    /// `--bip`: the default bridge's gateway address and subnet.
    pub bip: Option<(IpAddr, Subnet)>,
    /// Pools new networks' subnets come from, with the size of each subnet.
    pub pools: Vec<(Subnet, u8)>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// dockerd's `icc`: containers on the default bridge may talk to each other.
    pub icc: bool,
    /// dockerd's `ip`: the default bridge's address for published ports.
    pub ip: Option<IpAddr>,
    /// dockerd's `mtu`: the default bridge's MTU.
    pub mtu: Option<u32>,
    /// dockerd's `fixed-cidr`: the default bridge's containers get IPv4 addresses
    /// from this range.
    pub fixed_cidr: Option<Subnet>,
    /// dockerd's `ipv6` with `fixed-cidr-v6`: the default bridge's IPv6 subnet.
    pub ipv6: Option<Subnet>,
    /// dockerd's `iptables`: berth programs its nftables table (NAT, isolation,
    /// published ports); with false it touches no firewall at all, and published
    /// ports are served by the containers' shims instead.
    pub firewall: bool,
    /// dockerd's `ip-forward`: berth turns IPv4 forwarding on.
    pub ip_forward: bool,
    /// dockerd's `ip-masq`: the default bridge's traffic out is masqueraded.
    pub ip_masq: bool,
    /// dockerd's `userland-proxy`: ports published on IPv6 reach containers that
    /// have only IPv4 through their shim.
    pub userland_proxy: bool,
}

struct Inner {
    nets: BTreeMap<String, NetRecord>,
    /// Addresses in use, per network id (containers and the gateway).
    used: HashMap<String, HashSet<IpAddr>>,
    /// The last address handed out per network and family (round robin).
    last: HashMap<(String, bool), IpAddr>,
    /// Published ports of running containers, by container id.
    ports: BTreeMap<String, Vec<PortRule>>,
}

pub struct Networks {
    dir: PathBuf,
    /// berth's nftables table (inet family).
    pub table: String,
    pub config: NetConfig,
    inner: Mutex<Inner>,
    /// Held across rendering and applying the table, so that a slower apply of an
    /// older state can never land after a newer one.
    firewall: Mutex<()>,
    events: std::sync::Arc<crate::daemon::events::Events>,
    users: crate::daemon::users::Users<dyn NetworkUsers>,
    /// A rootless berthd: published ports reach its namespace from the host
    /// through slirp4netns.
    host_forwards: Option<hostfwd::HostForwards>,
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A failing step of the network service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the network records in {}", path.display())]
    Records {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("saving network {name}")]
    Save {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("removing the record {}", path.display())]
    Forget {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up bridge {bridge}")]
    Bridge {
        bridge: String,
        #[source]
        source: netlink::Error,
    },
    #[error("opening a netlink socket")]
    Netlink {
        #[source]
        source: std::io::Error,
    },
    #[error("bridge {bridge} vanished right after it was created")]
    BridgeVanished { bridge: String },
    #[error("routing published ports on 127.0.0.1 to bridge {bridge}")]
    RouteLocalnet {
        bridge: String,
        #[source]
        source: std::io::Error,
    },
    #[error("programming nftables table {table}")]
    Firewall {
        table: String,
        #[source]
        source: std::io::Error,
    },
}

/// A network record file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

fn parse_subnet(what: &str, s: &str) -> ApiResult<Subnet> {
    s.parse().map_err(|_| {
        ApiError::invalid(format!(
            "invalid {what} {s:?}: expected an address/prefix such as 10.1.0.0/24"
        ))
    })
}

fn parse_ip(what: &str, s: &str) -> ApiResult<IpAddr> {
    s.parse()
        .map_err(|_| ApiError::invalid(format!("invalid {what} {s:?}: not an IP address")))
}

impl Networks {
    /// Loads the network records, creating the predefined ones on first start, and
    /// brings the default bridge's record in line with `config`.
    pub fn open(
        data_root: &std::path::Path,
        table: String,
        config: NetConfig,
        events: std::sync::Arc<crate::daemon::events::Events>,
    ) -> ApiResult<Networks> {
        let dir = data_root.join("network");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Records {
            path: dir.clone(),
            source,
        })?;
        let mut nets = BTreeMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::Records {
            path: dir.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match std::fs::read(&p)
                    .map_err(RecordError::from)
                    .and_then(|b| Ok(serde_json::from_slice::<NetRecord>(&b)?))
                {
                    Ok(n) => {
                        nets.insert(n.id.clone(), n);
                    }
                    Err(e) => {
                        tracing::error!(file = %p.display(), error = %e, "unreadable network record, skipping")
                    }
                }
            } else if p.extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(&p);
            }
        }
        let me = Networks {
            dir,
            table,
            config,
            inner: Mutex::new(Inner {
                nets,
                used: HashMap::new(),
                last: HashMap::new(),
                ports: BTreeMap::new(),
            }),
            firewall: Mutex::new(()),
            events,
            users: Default::default(),
            host_forwards: None,
        };
        for (name, driver) in [(HOST, "host"), (NONE, "null")] {
            if me.find(name).is_none() {
                me.save_new(NetRecord {
                    id: crate::daemon::ids::new_id(),
                    name: name.into(),
                    driver: driver.into(),
                    created: now_rfc3339(),
                    internal: false,
                    attachable: false,
                    enable_ipv6: false,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    pools: vec![],
                    bridge: String::new(),
                    made_bridge: false,
                })?;
            }
        }
        me.configure_default_bridge()?;
        Ok(me)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save_new(&self, n: NetRecord) -> ApiResult<()> {
        self.write(&n)?;
        let mut g = self.lock();
        let used = g.used.entry(n.id.clone()).or_default();
        for p in &n.pools {
            used.insert(p.gateway);
        }
        g.nets.insert(n.id.clone(), n);
        Ok(())
    }

    /// Writes a record atomically (a temporary file renamed over the old one).
    fn write(&self, n: &NetRecord) -> ApiResult<()> {
        let path = self.dir.join(format!("{}.json", n.id));
        let tmp = self.dir.join(format!("{}.tmp", n.id));
        let body = serde_json::to_vec_pretty(n).expect("network record serialises");
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| {
                let _ = std::fs::remove_file(&tmp);
                Error::Save {
                    name: n.name.clone(),
                    source,
                }
                .into()
            })
    }

    /// The default bridge ("bridge"): created, updated to `--bridge`/`--bip`, or
    /// removed for `--bridge none`.
    fn configure_default_bridge(&self) -> ApiResult<()> {
        let existing = self.find(BRIDGE);
        let Some(ifname) = self.config.bridge.clone() else {
            if let Some(n) = existing {
                self.forget(&n.id)?;
            }
            return Ok(());
        };
        if !valid_ifname(&ifname) {
            return Err(ApiError::invalid(format!(
                "invalid bridge name {ifname:?}: 1 to 15 of [A-Za-z0-9_.-]"
            )));
        }
        let pool = match (self.config.bip, self.config.fixed_cidr) {
            (Some((gw, subnet)), range) => Pool {
                subnet,
                gateway: gw,
                ip_range: range,
                aux: BTreeMap::new(),
            },
            // As dockerd: without --bip, fixed-cidr is the bridge's subnet too.
            (None, Some(range)) => Pool {
                gateway: range
                    .nth(1)
                    .ok_or_else(|| ApiError::invalid(format!("fixed-cidr {range} is too small")))?,
                subnet: range,
                ip_range: Some(range),
                aux: BTreeMap::new(),
            },
            (None, None) => match existing.as_ref().and_then(|n| n.pool4().cloned()) {
                Some(p) if existing.as_ref().is_some_and(|n| n.bridge == ifname) => Pool {
                    ip_range: None,
                    ..p
                },
                _ => {
                    let subnet = self.pick_subnet(existing.as_ref().map(|n| n.id.as_str()))?;
                    Pool {
                        gateway: subnet.nth(1).expect("a subnet has a first address"),
                        subnet,
                        ip_range: None,
                        aux: BTreeMap::new(),
                    }
                }
            },
        };
        let mut options = BTreeMap::new();
        options.insert(OPT_BRIDGE_NAME.to_string(), ifname.clone());
        options.insert(OPT_MASQUERADE.to_string(), self.config.ip_masq.to_string());
        options.insert(
            "com.docker.network.bridge.default_bridge".into(),
            "true".into(),
        );
        options.insert(OPT_ICC.into(), self.config.icc.to_string());
        options.insert(
            OPT_HOST_BINDING.into(),
            self.config
                .ip
                .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
        );
        options.insert(OPT_MTU.into(), self.config.mtu.unwrap_or(1500).to_string());
        let rec = NetRecord {
            id: existing
                .as_ref()
                .map_or_else(crate::daemon::ids::new_id, |n| n.id.clone()),
            name: BRIDGE.into(),
            driver: "bridge".into(),
            created: existing
                .as_ref()
                .map_or_else(now_rfc3339, |n| n.created.clone()),
            internal: false,
            attachable: false,
            enable_ipv6: self.config.ipv6.is_some(),
            labels: BTreeMap::new(),
            options,
            made_bridge: existing
                .as_ref()
                .is_some_and(|n| n.made_bridge && n.bridge == ifname),
            pools: std::iter::once(pool)
                .chain(self.config.ipv6.map(|subnet| Pool {
                    gateway: subnet.nth(1).expect("checked: at most /124"),
                    subnet,
                    ip_range: None,
                    aux: BTreeMap::new(),
                }))
                .collect(),
            bridge: ifname,
        };
        if existing.as_ref() != Some(&rec) {
            if let Some(old) = existing.filter(|o| o.bridge != rec.bridge || o.pools != rec.pools) {
                // The old bridge is not berth's any more.
                let _ = Netlink::new().map(|mut nl| nl.delete_link(&old.bridge));
            }
            self.save_new(rec)?;
        }
        Ok(())
    }

    /// A free subnet from the pools: overlapping no berth network (except
    /// `ignore`) and no route of the host.
    fn pick_subnet(&self, ignore: Option<&str>) -> ApiResult<Subnet> {
        let mut taken = cidr::host_routes();
        {
            let g = self.lock();
            for n in g.nets.values().filter(|n| Some(n.id.as_str()) != ignore) {
                taken.extend(n.pools.iter().map(|p| p.subnet));
            }
        }
        // Routes of berth's own bridges are berth's networks, already counted.
        let pools = if self.config.pools.is_empty() {
            cidr::default_pools()
        } else {
            self.config.pools.clone()
        };
        cidr::pick_subnet(&pools, &taken).ok_or_else(|| {
            ApiError::invalid("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
        })
    }

    fn forget(&self, id: &str) -> ApiResult<()> {
        let path = self.dir.join(format!("{id}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Forget { path, source }.into()),
        }
        let mut g = self.lock();
        g.nets.remove(id);
        g.used.remove(id);
        g.last.retain(|(n, _), _| n != id);
        Ok(())
    }

    pub fn all(&self) -> Vec<NetRecord> {
        self.lock().nets.values().cloned().collect()
    }

    /// A network by full id, name, or unique id prefix (Docker's order).
    pub fn find(&self, key: &str) -> Option<NetRecord> {
        let g = self.lock();
        if let Some(n) = g.nets.get(key) {
            return Some(n.clone());
        }
        if let Some(n) = g.nets.values().find(|n| n.name == key) {
            return Some(n.clone());
        }
        let mut by_prefix = g
            .nets
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> ApiResult<NetRecord> {
        self.find(key)
            .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))
    }

    /// Brings every bridge up (created when missing, with its gateway addresses) and
    /// writes berth's nftables table. Run at daemon start, which also reconciles
    /// after a crash.
    pub fn setup(&self) -> ApiResult<()> {
        for n in self.all().into_iter().filter(NetRecord::is_bridge) {
            if self.ensure_bridge(&n)? {
                self.mark_made(&n.id)?;
            }
        }
        // Forwarding is how containers reach beyond their bridge, as with Docker.
        if !self.config.ip_forward {
            return self.apply_firewall();
        }
        if let Err(e) = netlink::sysctl("net/ipv4/ip_forward", "1") {
            tracing::warn!(error = %e, "enabling IPv4 forwarding");
        }
        self.apply_firewall()
    }

    /// Makes sure `n`'s bridge exists and is set up; true when it had to be made.
    fn ensure_bridge(&self, n: &NetRecord) -> ApiResult<bool> {
        let bridge = || n.bridge.clone();
        let setup = |source| Error::Bridge {
            bridge: bridge(),
            source,
        };
        let mut nl = Netlink::new().map_err(|source| Error::Netlink { source })?;
        let mut made = false;
        let index = match nl.link_index(&n.bridge).map_err(setup)? {
            Some(i) => i,
            None => {
                nl.create_bridge(&n.bridge, n.mtu()).map_err(setup)?;
                made = true;
                nl.link_index(&n.bridge)
                    .map_err(setup)?
                    .ok_or_else(|| Error::BridgeVanished { bridge: bridge() })?
            }
        };
        if let Some(mtu) = n.mtu().filter(|_| !made) {
            nl.set_mtu(index, mtu).map_err(setup)?;
        }
        nl.set_up(index).map_err(setup)?;
        for p in &n.pools {
            nl.add_address(index, p.gateway, p.subnet.prefix)
                .map_err(setup)?;
        }
        // Published ports reached through 127.0.0.1 are routed to the bridge.
        netlink::sysctl(&format!("net/ipv4/conf/{}/route_localnet", n.bridge), "1").map_err(
            |source| Error::RouteLocalnet {
                bridge: bridge(),
                source,
            },
        )?;
        Ok(made)
    }

    /// Records that this daemon made network `id`'s bridge.
    fn mark_made(&self, id: &str) -> ApiResult<()> {
        let rec = {
            let mut g = self.lock();
            let Some(n) = g.nets.get_mut(id) else {
                return Ok(()); // not saved yet: its creator records it
            };
            if n.made_bridge {
                return Ok(());
            }
            n.made_bridge = true;
            n.clone()
        };
        self.write(&rec)
    }

    /// Makes a network's bridge again when it went missing under us (another
    /// daemon that shared it removed it), with its firewall rules.
    pub fn restore_bridge(&self, n: &NetRecord) -> ApiResult<()> {
        tracing::warn!(bridge = %n.bridge, network = %n.name, "the bridge went missing; making it again");
        if self.ensure_bridge(n)? {
            self.mark_made(&n.id)?;
        }
        self.apply_firewall()
    }

    /// Renders and applies berth's nftables table from the networks and the
    /// published ports.
    /// A rootless berthd's published ports are forwarded from the host by
    /// slirp4netns, asked on its API socket `api`.
    pub fn forward_host_ports(&mut self, api: PathBuf) {
        self.host_forwards = Some(hostfwd::HostForwards::new(api));
    }

    pub fn apply_firewall(&self) -> ApiResult<()> {
        let _serial = self.firewall.lock().unwrap_or_else(|p| p.into_inner());
        let ports: Vec<PortRule> = self.lock().ports.values().flatten().cloned().collect();
        if let Some(f) = &self.host_forwards {
            f.sync(&ports).map_err(ApiError::internal)?;
        }
        if !self.config.firewall {
            return Ok(());
        }
        let rules = {
            let g = self.lock();
            Ruleset {
                bridges: g
                    .nets
                    .values()
                    .filter(|n| n.is_bridge())
                    .map(NetRecord::firewall)
                    .collect(),
                // Behind slirp4netns every connection arrives at its guest
                // address: the host address was chosen on the host's side.
                ports: match &self.host_forwards {
                    Some(_) => ports
                        .into_iter()
                        .map(|p| PortRule {
                            host_ip: p.host_ip.filter(|ip| ip.is_ipv6()),
                            ..p
                        })
                        .collect(),
                    None => ports,
                },
            }
        };
        rules.apply(&self.table).map_err(|source| {
            Error::Firewall {
                table: self.table.clone(),
                source,
            }
            .into()
        })
    }

    /// Removes berth's bridges and its nftables table (berthd stopping with no
    /// container left running).
    pub fn teardown(&self) {
        if let Ok(mut nl) = Netlink::new() {
            for n in self.all().into_iter().filter(NetRecord::is_bridge) {
                // Only a bridge this daemon made, and that nothing else uses (a
                // second daemon's containers on a shared bridge keep it).
                // The kernel removes a stopped container's veth a moment after its
                // last process: what is still there after a short wait is in use.
                let brif = format!("/sys/class/net/{}/brif", n.bridge);
                let count = || std::fs::read_dir(&brif).map_or(0, |d| d.count());
                let mut left = count();
                for _ in 0..100 {
                    if left == 0 || !n.made_bridge {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    left = count();
                }
                let ports = left;
                if !n.made_bridge || ports > 0 {
                    tracing::info!(bridge = %n.bridge, ports, "leaving a bridge this daemon did not make or that is in use");
                    continue;
                }
                if let Err(e) = nl.delete_link(&n.bridge) {
                    tracing::warn!(bridge = %n.bridge, error = %e, "removing bridge");
                }
            }
        }
        if !self.config.firewall {
            return;
        }
        if let Err(e) = nft::remove(&self.table) {
            tracing::warn!(error = %e, "removing the nftables table");
        }
    }

    /// Removes a user-defined network (the caller checked it has no endpoints).
    pub fn remove(&self, n: &NetRecord) -> ApiResult<()> {
        if !n.user_defined() {
            return Err(ApiError::new(
                berth_api::ErrorKind::Forbidden,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        self.forget(&n.id)?;
        if n.is_bridge() {
            if let Ok(mut nl) = Netlink::new() {
                if let Err(e) = nl.delete_link(&n.bridge) {
                    tracing::warn!(bridge = %n.bridge, error = %e, "removing bridge");
                }
            }
        }
        self.apply_firewall()
    }

    /// Records a container's published ports (replacing earlier ones) and applies
    /// the firewall.
    pub fn set_ports(&self, container: &str, rules: Vec<PortRule>) -> ApiResult<()> {
        {
            let mut g = self.lock();
            if rules.is_empty() && !g.ports.contains_key(container) {
                return Ok(());
            }
            if rules.is_empty() {
                g.ports.remove(container);
            } else {
                g.ports.insert(container.to_string(), rules);
            }
        }
        self.apply_firewall()
    }

    /// Records ports without applying (restore, before the one apply of `setup`).
    pub fn restore_ports(&self, container: &str, rules: Vec<PortRule>) {
        if !rules.is_empty() {
            self.lock().ports.insert(container.to_string(), rules);
        }
    }
}

/// Parses dockerd's `--default-address-pool base=10.10.0.0/16,size=24`.
pub fn parse_pool(s: &str) -> Result<(Subnet, u8), String> {
    let mut base = None;
    let mut size = None;
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => base = Some(v.parse::<Subnet>().map_err(|e| e.to_string())?),
            Some(("size", v)) => {
                size = Some(v.parse::<u8>().map_err(|_| format!("invalid size {v:?}"))?)
            }
            _ => {
                return Err(format!(
                    "invalid address pool {s:?}: use base=<cidr>,size=<prefix length>"
                ))
            }
        }
    }
    match (base, size) {
        (Some(b), Some(z)) if z >= b.prefix && z <= 32 && b.is_ipv4() => Ok((b, z)),
        (Some(b), Some(z)) => Err(format!(
            "invalid address pool {s:?}: size /{z} does not fit in {b}"
        )),
        _ => Err(format!(
            "invalid address pool {s:?}: use base=<cidr>,size=<prefix length>"
        )),
    }
}

/// One container's endpoint on a network, as the network service is told of it.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub network_id: String,
    pub container_id: String,
    pub container_name: String,
    pub running: bool,
    pub endpoint_id: String,
    pub mac: String,
    /// Address with prefix length ("10.0.0.2/24"), empty when none.
    pub ipv4: String,
    pub ipv6: String,
}

/// What the network service asks of whoever attaches containers to networks.
pub trait NetworkUsers: Send + Sync {
    /// Every container endpoint, running or not, on any network.
    fn attachments(&self) -> Vec<Attachment>;
}

/// A network event's attributes.
pub fn event_attrs(n: &NetRecord, container: Option<&str>) -> crate::daemon::events::Attributes {
    let mut a = crate::daemon::events::Attributes::new();
    a.insert("name".into(), n.name.clone());
    a.insert("type".into(), n.driver.clone());
    if let Some(c) = container {
        a.insert("container".into(), c.to_string());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_pools_parse() {
        let (b, z) = parse_pool("base=10.10.0.0/16,size=24").unwrap();
        assert_eq!((b.to_string(), z), ("10.10.0.0/16".to_string(), 24));
        assert!(parse_pool("base=10.10.0.0/16,size=8").is_err());
        assert!(parse_pool("base=10.10.0.0/16").is_err());
        assert!(parse_pool("10.10.0.0/16").is_err());
    }

    #[test]
    fn interface_names() {
        assert!(valid_ifname("berth0"));
        assert!(valid_ifname("br-0123456789a"));
        assert!(!valid_ifname("a-name-that-is-too-long"));
        assert!(!valid_ifname("bad name"));
        assert!(!valid_ifname("\"x"));
    }
}
