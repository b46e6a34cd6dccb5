//! `docker network create`: Docker's checks and defaults, a subnet from the pools,
//! the bridge and its firewall rules.

use super::*;

impl Networks {
    /// `POST /networks/create`.
    pub fn create(&self, req: berth_api::NetworkCreateRequest) -> ApiResult<NetRecord> {
        let name = req.name.trim().to_string();
        if name.is_empty() {
            return Err(ApiError::invalid("network name cannot be empty"));
        }
        if !crate::daemon::ids::valid(&name) {
            return Err(ApiError::invalid(format!(
                "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if [BRIDGE, HOST, NONE].contains(&name.as_str()) {
            return Err(ApiError::new(
                berth_api::ErrorKind::Forbidden,
                format!("{name} is a pre-defined network and cannot be created"),
            ));
        }
        if self.lock().nets.values().any(|n| n.name == name) {
            return Err(ApiError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let driver = if req.driver.is_empty() {
            "bridge".to_string()
        } else {
            req.driver.clone()
        };
        if !["bridge", "macvlan", "ipvlan"].contains(&driver.as_str()) {
            return Err(ApiError::not_found(format!(
                "plugin \"{driver}\" not found: berth has the bridge, macvlan and ipvlan drivers for user-defined networks"
            )));
        }
        if req.ingress
            || req.config_only
            || req
                .config_from
                .as_ref()
                .is_some_and(|c| !c.network.is_empty())
        {
            return Err(ApiError::not_implemented(
                "ingress and config-only networks are swarm features, which berth does not have",
            ));
        }
        if req.enable_ipv4 == Some(false) {
            return Err(ApiError::not_implemented(
                "berth's bridge networks need IPv4",
            ));
        }
        if !req.scope.is_empty() && req.scope != "local" {
            return Err(ApiError::invalid(format!(
                "scope {:?} is not supported: berth networks are local",
                req.scope
            )));
        }
        let ipam = req.ipam.clone().unwrap_or_default();
        if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(ApiError::invalid(
                "the default IPAM driver takes no options (--ipam-opt)",
            ));
        }
        if !ipam.driver.is_empty() && ipam.driver != "default" {
            return Err(ApiError::not_found(format!(
                "IPAM driver {:?} not found",
                ipam.driver
            )));
        }
        let options = req.options.clone().unwrap_or_default();
        for k in options.keys() {
            let known: &[&str] = match driver.as_str() {
                "macvlan" => &["parent", "macvlan_mode", OPT_MTU],
                "ipvlan" => &["parent", "ipvlan_mode", "ipvlan_flag", OPT_MTU],
                _ => &[
                    OPT_BRIDGE_NAME,
                    OPT_MASQUERADE,
                    OPT_ICC,
                    OPT_MTU,
                    OPT_HOST_BINDING,
                ],
            };
            if !known.contains(&k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "berth does not support the network option {k:?}"
                )));
            }
        }
        for (k, v) in &options {
            check_option(k, v)?;
        }
        let id = crate::daemon::ids::new_id();
        if driver != "bridge" {
            sublink_mode(&driver, &options)?;
            self.check_parent(&driver, &options)?;
        }
        let bridge = match options.get(OPT_BRIDGE_NAME) {
            _ if driver != "bridge" => String::new(),
            Some(b) if !valid_ifname(b) => {
                return Err(ApiError::invalid(format!(
                    "invalid bridge name {b:?}: 1 to 15 of [A-Za-z0-9_.-]"
                )))
            }
            Some(b) => {
                if self.lock().nets.values().any(|n| &n.bridge == b) {
                    return Err(ApiError::conflict(format!(
                        "bridge name {b} is used by another network"
                    )));
                }
                b.clone()
            }
            None => format!("br-{}", &id[..12]),
        };
        let mut pools = Vec::new();
        let existing: Vec<Subnet> = self
            .lock()
            .nets
            .values()
            .flat_map(|n| n.pools.iter().map(|p| p.subnet))
            .collect();
        for c in ipam.config.clone().unwrap_or_default() {
            if c.subnet.is_empty() {
                if !c.ip_range.is_empty() || !c.gateway.is_empty() {
                    return Err(ApiError::invalid(
                        "a gateway or IP range needs a subnet (--subnet)",
                    ));
                }
                continue;
            }
            let subnet = parse_subnet("subnet", &c.subnet)?;
            if let Some(o) = existing
                .iter()
                .chain(pools.iter().map(|p: &Pool| &p.subnet))
                .find(|o| o.overlaps(&subnet))
            {
                return Err(ApiError::new(
                    berth_api::ErrorKind::Forbidden,
                    format!("Pool overlaps with other one on this address space ({o})"),
                ));
            }
            let gateway = if c.gateway.is_empty() {
                subnet
                    .nth(1)
                    .ok_or_else(|| ApiError::invalid(format!("subnet {subnet} is too small")))?
            } else {
                let g = parse_ip("gateway", &c.gateway)?;
                if !subnet.contains(&g) {
                    return Err(ApiError::invalid(format!(
                        "gateway {g} is not in subnet {subnet}"
                    )));
                }
                g
            };
            let ip_range = if c.ip_range.is_empty() {
                None
            } else {
                let r = parse_subnet("IP range", &c.ip_range)?;
                if !subnet.contains(&r.addr) || r.prefix < subnet.prefix {
                    return Err(ApiError::invalid(format!(
                        "IP range {r} is not inside subnet {subnet}"
                    )));
                }
                Some(r)
            };
            if subnet.is_ipv4() && subnet.prefix > 30 {
                return Err(ApiError::invalid(format!(
                    "subnet {subnet} is too small: at most /30"
                )));
            }
            let mut aux = BTreeMap::new();
            for (k, v) in c.aux_address.iter().flatten() {
                let ip: IpAddr = v.parse().map_err(|_| {
                    ApiError::invalid(format!(
                        "invalid auxiliary address {k}: {v:?} is not an IP address"
                    ))
                })?;
                if !subnet.contains(&ip) {
                    return Err(ApiError::invalid(format!(
                        "auxiliary address: ({k}:{v}) must belong to the master pool: {subnet}"
                    )));
                }
                aux.insert(k.clone(), ip);
            }
            pools.push(Pool {
                subnet,
                gateway,
                ip_range,
                aux,
            });
        }
        let enable_ipv6 = req.enable_ipv6.unwrap_or(false);
        if pools.iter().any(|p| !p.subnet.is_ipv4()) && !enable_ipv6 {
            return Err(ApiError::invalid(
                "an IPv6 subnet needs --ipv6 (EnableIPv6)",
            ));
        }
        if enable_ipv6 && !pools.iter().any(|p| !p.subnet.is_ipv4()) {
            return Err(ApiError::invalid(
                "--ipv6 needs an IPv6 subnet (--subnet): berth has no default IPv6 pool",
            ));
        }
        if !pools.iter().any(|p| p.subnet.is_ipv4()) {
            let subnet = self.pick_subnet(None)?;
            pools.insert(
                0,
                Pool {
                    gateway: subnet.nth(1).expect("a subnet has a first address"),
                    subnet,
                    ip_range: None,
                    aux: BTreeMap::new(),
                },
            );
        }
        let mut rec = NetRecord {
            id,
            name,
            driver,
            created: now_rfc3339(),
            internal: req.internal,
            attachable: req.attachable,
            enable_ipv6,
            labels: req.labels.clone().unwrap_or_default(),
            options,
            pools,
            bridge,
            made_bridge: false,
        };
        // The interface first: a failure leaves no record behind.
        if rec.is_bridge() {
            match self.ensure_bridge(&rec) {
                Ok(made) => rec.made_bridge = made,
                Err(e) => {
                    let _ = Netlink::new().map(|mut nl| nl.delete_link(&rec.bridge));
                    return Err(e);
                }
            }
        }
        let undo = |rec: &NetRecord| {
            if rec.is_bridge() {
                let _ = Netlink::new().map(|mut nl| nl.delete_link(&rec.bridge));
            }
        };
        if let Err(e) = self.save_new(rec.clone()) {
            undo(&rec);
            return Err(e);
        }
        if let Err(e) = self.apply_firewall() {
            let _ = self.forget(&rec.id);
            undo(&rec);
            return Err(e);
        }
        Ok(rec)
    }

    /// A macvlan or ipvlan network's parent must be an interface of the host, and
    /// the kernel must make such interfaces on it: tried once in a namespace of
    /// its own that goes away at once.
    fn check_parent(&self, driver: &str, options: &BTreeMap<String, String>) -> ApiResult<()> {
        let Some(parent) = options.get("parent").filter(|p| !p.is_empty()) else {
            return Err(ApiError::not_implemented(format!(
                "berth's {driver} networks need -o parent=<interface>: the dummy parent Docker makes without one needs the kernel's dummy interfaces"
            )));
        };
        let mut nl = Netlink::new().map_err(|source| Error::Netlink { source })?;
        let index = nl
            .link_index(parent)
            .map_err(|e| ApiError::invalid(format!("looking up {parent}: {e}")))?
            .ok_or_else(|| {
                if parent.contains('.') {
                    ApiError::not_implemented(format!(
                        "-o parent interface was not found on the host: {parent} (berth does not make 802.1q sub-interfaces: create it first)"
                    ))
                } else {
                    ApiError::invalid(format!(
                        "-o parent interface was not found on the host: {parent}"
                    ))
                }
            })?;
        let mode = sublink_mode(driver, options)?;
        let (ns, _inner) = berth_runtime::sys::in_new_netns(Netlink::new)
            .map_err(|source| Error::Netlink { source })?;
        use std::os::fd::AsFd;
        nl.create_sublink(driver, "probe0", index, mode, ns.as_fd(), None, None)
            .map_err(|e| {
                if e.errno() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) {
                    ApiError::not_implemented(format!(
                        "failed to create the {driver} port: this kernel has no {driver} support ({})",
                        e.source
                    ))
                } else {
                    ApiError::invalid(format!("failed to create the {driver} port on {parent}: {e}"))
                }
            })
    }
}

/// The kernel's mode of a macvlan (`macvlan_mode`: bridge, private, vepa,
/// passthru) or ipvlan (`ipvlan_mode`: l2, l3, l3s) network.
pub fn sublink_mode(driver: &str, options: &BTreeMap<String, String>) -> ApiResult<u32> {
    if driver == "ipvlan" {
        if let Some(f) = options
            .get("ipvlan_flag")
            .filter(|f| f.as_str() != "bridge")
        {
            return Err(ApiError::not_implemented(format!(
                "berth does not support ipvlan_flag={f} yet"
            )));
        }
        return match options.get("ipvlan_mode").map_or("l2", String::as_str) {
            "" | "l2" => Ok(0),
            "l3" => Ok(1),
            "l3s" => Ok(2),
            m => Err(ApiError::invalid(format!(
                "requested ipvlan mode '{m}' is not valid, 'l2' mode is the ipvlan driver default"
            ))),
        };
    }
    match options.get("macvlan_mode").map_or("bridge", String::as_str) {
        "" | "bridge" => Ok(4),
        "private" => Ok(1),
        "vepa" => Ok(2),
        "passthru" => Ok(8),
        m => Err(ApiError::invalid(format!(
            "requested macvlan mode '{m}' is not valid, 'bridge' mode is the macvlan driver default"
        ))),
    }
}
