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
        if driver != "bridge" {
            return Err(ApiError::not_found(format!(
                "plugin \"{driver}\" not found: berth has the bridge driver for user-defined networks"
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
            let known = [
                OPT_BRIDGE_NAME,
                OPT_MASQUERADE,
                OPT_ICC,
                OPT_MTU,
                OPT_HOST_BINDING,
            ];
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
        let bridge = match options.get(OPT_BRIDGE_NAME) {
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
        match self.ensure_bridge(&rec) {
            Ok(made) => rec.made_bridge = made,
            Err(e) => {
                let _ = Netlink::new().map(|mut nl| nl.delete_link(&rec.bridge));
                return Err(e);
            }
        }
        if let Err(e) = self.save_new(rec.clone()) {
            let _ = Netlink::new().map(|mut nl| nl.delete_link(&rec.bridge));
            return Err(e);
        }
        if let Err(e) = self.apply_firewall() {
            let _ = self.forget(&rec.id);
            let _ = Netlink::new().map(|mut nl| nl.delete_link(&rec.bridge));
            return Err(e);
        }
        Ok(rec)
    }
}
