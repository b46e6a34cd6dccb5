//! Addresses on a network: handed out round robin from the pool (or the one a
//! container asks for), claimed back at restore, released at exit.

use super::*;

impl Networks {
    /// Marks `ip` used on network `id` (a running container found at restore).
    pub fn claim(&self, id: &str, ip: IpAddr) {
        self.lock()
            .used
            .entry(id.to_string())
            .or_default()
            .insert(ip);
    }

    /// An address for a container on network `id`: `want` when given (it must be in
    /// the subnet and free), else the next free one. Returns the address and its pool.
    pub fn allocate(&self, id: &str, v4: bool, want: Option<IpAddr>) -> ApiResult<(IpAddr, Pool)> {
        let mut g = self.lock();
        let n = g
            .nets
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("network {id} not found")))?;
        let pool = if v4 { n.pool4() } else { n.pool6() }
            .cloned()
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "network {} has no IPv{} subnet",
                    n.name,
                    if v4 { 4 } else { 6 }
                ))
            })?;
        let used = g.used.entry(id.to_string()).or_default();
        // The gateways and the auxiliary addresses are never handed out.
        used.extend(n.pools.iter().map(|p| p.gateway));
        used.extend(n.pools.iter().flat_map(|p| p.aux.values().copied()));
        let ip = match want {
            Some(ip) => {
                if !pool.subnet.contains(&ip) {
                    return Err(ApiError::invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
                if n.pools.iter().any(|p| p.aux.values().any(|a| *a == ip)) {
                    return Err(ApiError::conflict(format!(
                        "Address already in use: {ip} on network {} (an auxiliary address)",
                        n.name
                    )));
                }
                if used.contains(&ip) {
                    return Err(ApiError::conflict(format!(
                        "Address already in use: {ip} on network {}",
                        n.name
                    )));
                }
                ip
            }
            None => {
                let last = g.last.get(&(id.to_string(), v4)).copied();
                let used = g.used.entry(id.to_string()).or_default();
                cidr::allocate(&pool.subnet, pool.ip_range.as_ref(), used, last).ok_or_else(
                    || {
                        ApiError::conflict(format!(
                            "no available IPv{} addresses on network {}",
                            if v4 { 4 } else { 6 },
                            n.name
                        ))
                    },
                )?
            }
        };
        g.used.entry(id.to_string()).or_default().insert(ip);
        if want.is_none() {
            g.last.insert((id.to_string(), v4), ip);
        }
        Ok((ip, pool))
    }

    pub fn release(&self, id: &str, ip: IpAddr) {
        let mut g = self.lock();
        let gateways: Vec<IpAddr> = g
            .nets
            .get(id)
            .map(|n| n.pools.iter().map(|p| p.gateway).collect())
            .unwrap_or_default();
        if gateways.contains(&ip) {
            return;
        }
        if let Some(u) = g.used.get_mut(id) {
            u.remove(&ip);
        }
    }
}
