//! The settings that need more than a type to check: hosts, the default bridge and
//! its network keys, containers' defaults, the sockets' group.

use anyhow::{bail, Context, Result};

/// A group's id, by name (from /etc/group) or number.
pub(super) fn group_id(g: &str) -> Option<u32> {
    if let Ok(n) = g.parse::<u32>() {
        return Some(n);
    }
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(g)).then(|| f.nth(1)?.parse().ok())?
        })
}

/// Containers' defaults from `default-shm-size`, `default-ulimits`, `log-driver`
/// with `log-opts`, `default-cgroupns-mode`.
pub(super) fn container_defaults(
    shm: Option<String>,
    ulimits: Option<Vec<String>>,
    log_driver: Option<String>,
    log_opts: Option<Vec<String>>,
    cgroupns: Option<String>,
) -> Result<crate::daemon::container::Defaults> {
    let mut d = crate::daemon::container::Defaults::default();
    if let Some(s) = shm {
        d.shm_size = berth_build::exec::parse_size(&s)
            .filter(|n| *n > 0)
            .with_context(|| format!("invalid default-shm-size {s:?}: want a size such as 64M"))?
            as i64;
    }
    for u in ulimits.unwrap_or_default() {
        let (name, limits) = u
            .split_once('=')
            .with_context(|| format!("invalid default ulimit {u:?}: want name=soft[:hard]"))?;
        let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
        let n = |v: &str| {
            v.parse::<i64>()
                .with_context(|| format!("invalid default ulimit {u:?}: {v:?} is not a number"))
        };
        d.ulimits.push(berth_api::Ulimit {
            name: name.to_string(),
            soft: n(soft)?,
            hard: n(hard)?,
        });
    }
    if let Some(l) = log_driver {
        if !["json-file", "local", "none"].contains(&l.as_str())
            && !crate::daemon::container::logdrivers::REMOTE.contains(&l.as_str())
        {
            bail!("logger: no log driver named '{l}' is registered");
        }
        d.log.kind = l;
    }
    if let Some(opts) = log_opts.filter(|o| !o.is_empty()) {
        let mut m = std::collections::BTreeMap::new();
        for o in opts {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("invalid log-opt {o:?}: want key=value"))?;
            m.insert(k.to_string(), v.to_string());
        }
        d.log.config = Some(m);
    }
    if let Some(c) = cgroupns {
        if c != "host" && c != "private" {
            bail!("invalid default-cgroupns-mode {c:?}: host or private");
        }
        d.cgroupns_mode = c;
    }
    // Checked as a container's own would be.
    d.validate().map_err(anyhow::Error::msg)?;
    Ok(d)
}

/// dockerd's settings of the default bridge: `icc`, `ip`, `mtu`.
pub(super) struct DefaultBridge {
    pub(super) icc: Option<bool>,
    pub(super) ip: Option<String>,
    pub(super) mtu: Option<i64>,
    pub(super) fixed_cidr: Option<String>,
    pub(super) ipv6: bool,
    pub(super) fixed_cidr_v6: Option<String>,
}

pub(super) fn net_config(
    bridge: Option<String>,
    bip: Option<String>,
    pools: Vec<String>,
    dns: Vec<String>,
    dns_search: Vec<String>,
    dns_options: Vec<String>,
    default_bridge: DefaultBridge,
) -> Result<crate::daemon::network::NetConfig> {
    use berth_net::cidr::Subnet;
    let bridge = match bridge.as_deref() {
        Some("none") => None,
        Some(b) => Some(b.to_string()),
        None => Some("berth0".to_string()),
    };
    if bridge.is_none() && bip.is_some() {
        bail!("--bip cannot be used with --bridge none");
    }
    let bip = match bip {
        None => None,
        Some(b) => {
            let (ip, _) = b.split_once('/').with_context(|| {
                format!("invalid bip {b:?}: use address/prefix, e.g. 172.30.0.1/16")
            })?;
            let ip: std::net::IpAddr = ip
                .parse()
                .with_context(|| format!("invalid bip {b:?}: {ip:?} is not an IP address"))?;
            let subnet: Subnet = b.parse().map_err(|_| {
                anyhow::anyhow!("invalid bip {b:?}: use address/prefix, e.g. 172.30.0.1/16")
            })?;
            if !ip.is_ipv4() || subnet.addr == ip {
                bail!("invalid bip {b:?}: give the bridge's IPv4 address, not the network's");
            }
            Some((ip, subnet))
        }
    };
    let pools = pools
        .iter()
        .map(|p| crate::daemon::network::parse_pool(p).map_err(|e| anyhow::anyhow!(e)))
        .collect::<Result<Vec<_>>>()?;
    for d in &dns {
        d.parse::<std::net::IpAddr>()
            .with_context(|| format!("invalid dns {d:?}: not an IP address"))?;
    }
    let DefaultBridge {
        icc,
        ip,
        mtu,
        fixed_cidr,
        ipv6,
        fixed_cidr_v6,
    } = default_bridge;
    let fixed_cidr = fixed_cidr
        .map(|c| {
            c.parse::<Subnet>()
                .ok()
                .filter(Subnet::is_ipv4)
                .with_context(|| format!("invalid fixed-cidr {c:?}: want an IPv4 CIDR"))
        })
        .transpose()?;
    if let (Some(r), Some((_, subnet))) = (&fixed_cidr, &bip) {
        if !subnet.contains(&r.addr) || r.prefix < subnet.prefix {
            bail!("fixed-cidr {r} is not inside the bridge's subnet {subnet} (--bip)");
        }
    }
    let ipv6 = match (ipv6, fixed_cidr_v6) {
        (false, None) => None,
        (false, Some(_)) => bail!("fixed-cidr-v6 needs ipv6"),
        (true, None) => {
            bail!("ipv6 needs fixed-cidr-v6: berth has no default IPv6 pool for the default bridge")
        }
        (true, Some(c)) => Some(
            c.parse::<Subnet>()
                .ok()
                .filter(|s| !s.is_ipv4() && s.prefix <= 124)
                .with_context(|| format!("invalid fixed-cidr-v6 {c:?}: want an IPv6 CIDR"))?,
        ),
    };
    let ip = ip
        .map(|ip| {
            ip.parse::<std::net::IpAddr>()
                .with_context(|| format!("invalid ip {ip:?}: not an IP address"))
        })
        .transpose()?
        .filter(|ip| !ip.is_unspecified());
    let mtu = match mtu {
        None => None,
        Some(m) if (68..=65535).contains(&m) => Some(m as u32),
        Some(m) => bail!("invalid MTU number: {m} (between 68 and 65535)"),
    };
    if bridge.is_none()
        && (icc.is_some()
            || ip.is_some()
            || mtu.is_some()
            || fixed_cidr.is_some()
            || ipv6.is_some())
    {
        bail!("icc, ip, mtu, fixed-cidr and ipv6 set the default bridge: they cannot be used with --bridge none");
    }
    Ok(crate::daemon::network::NetConfig {
        userland_proxy: true,
        firewall: true,
        ip_forward: true,
        ip_masq: true,
        fixed_cidr,
        ipv6,
        icc: icc.unwrap_or(true),
        ip,
        mtu,
        bridge,
        bip,
        pools,
        dns,
        dns_search,
        dns_options,
    })
}

pub(super) fn validate_host(h: &str, tls: bool, tlsverify: bool) -> Result<()> {
    if let Some(p) = h.strip_prefix("unix://") {
        if p.is_empty() || !p.starts_with('/') {
            bail!("invalid host {h:?}: unix socket paths must be absolute");
        }
        return Ok(());
    }
    if h.starts_with("fd://") {
        return Ok(());
    }
    if h.starts_with("tcp://") {
        let addr = tcp_addr(h)?;
        if !addr.ip().is_loopback() && !tlsverify {
            bail!(
                "refusing to listen on {h} without --tlsverify: anyone who can reach that address would control this host as root (dockerd only warns); give --tlsverify with --tlscacert, --tlscert and --tlskey, or listen on a loopback address"
            );
        }
        if !tls {
            eprintln!(
                "berthd: warning: {h} has no TLS: any local user who can connect to it controls this host as root"
            );
        }
        return Ok(());
    }
    bail!("invalid host {h:?}: use unix:///path or fd://")
}

/// The address of `tcp://HOST:PORT` (an empty host: every address; a name is
/// resolved).
pub fn tcp_addr(h: &str) -> Result<std::net::SocketAddr> {
    let rest = h.trim_start_matches("tcp://").trim_end_matches('/');
    let with_host = if rest.starts_with(':') {
        format!("0.0.0.0{rest}")
    } else {
        rest.to_string()
    };
    use std::net::ToSocketAddrs;
    with_host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("invalid host {h:?}: use tcp://ADDRESS:PORT"))
}
