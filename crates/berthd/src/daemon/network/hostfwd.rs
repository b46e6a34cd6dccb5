//! A rootless berthd's published ports on the host: its network namespace is
//! reached from the host only through slirp4netns, which forwards a host port
//! into it when asked on its API socket (`add_hostfwd`, `remove_hostfwd`).
//! Inside, berth's own rules take the connection from slirp4netns's address
//! to the container, as for any published port.

use berth_net::nft::PortRule;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

/// The host ports forwarded so far, each with slirp4netns's id for it.
pub struct HostForwards {
    api: PathBuf,
    active: Mutex<HashMap<(String, String, u16), u64>>,
}

/// One request on slirp4netns's API socket (one per connection).
fn request(api: &std::path::Path, req: serde_json::Value) -> Result<serde_json::Value, String> {
    let mut s = std::os::unix::net::UnixStream::connect(api)
        .map_err(|e| format!("slirp4netns API {}: {e}", api.display()))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(req.to_string().as_bytes())
        .and_then(|_| s.shutdown(std::net::Shutdown::Write))
        .map_err(|e| format!("slirp4netns API: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("slirp4netns API: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("slirp4netns API answered {out:?}: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!(
            "slirp4netns: {}",
            e["desc"].as_str().unwrap_or("an error")
        ));
    }
    Ok(v["return"].clone())
}

impl HostForwards {
    pub fn new(api: PathBuf) -> HostForwards {
        HostForwards {
            api,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the forwarded host ports those of `rules`: new ones added, gone
    /// ones removed. IPv6 host addresses are not forwarded (slirp4netns's
    /// forwards are IPv4).
    pub fn sync(&self, rules: &[PortRule]) -> Result<(), String> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let wanted: Vec<(String, String, u16)> = rules
            .iter()
            .filter(|r| r.proto == "tcp" || r.proto == "udp")
            .filter_map(|r| match r.host_ip {
                None => Some((r.proto.clone(), "0.0.0.0".to_string(), r.host_port)),
                Some(IpAddr::V4(ip)) => Some((r.proto.clone(), ip.to_string(), r.host_port)),
                Some(IpAddr::V6(_)) => None,
            })
            .collect();
        let gone: Vec<_> = active
            .keys()
            .filter(|k| !wanted.contains(k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(id) = active.remove(&k) {
                request(
                    &self.api,
                    serde_json::json!({"execute": "remove_hostfwd", "arguments": {"id": id}}),
                )?;
            }
        }
        let mut failed = Vec::new();
        for k in wanted {
            if active.contains_key(&k) {
                continue;
            }
            let (proto, addr, port) = &k;
            match request(
                &self.api,
                serde_json::json!({"execute": "add_hostfwd", "arguments": {
                    "proto": proto, "host_addr": addr, "host_port": port,
                    "guest_addr": crate::rootless::GUEST_ADDR, "guest_port": port,
                }}),
            ) {
                Ok(r) => {
                    if let Some(id) = r["id"].as_u64() {
                        active.insert(k, id);
                    }
                }
                Err(e) => failed.push(format!("{addr}:{port}/{proto}: {e}")),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "forwarding host ports into the rootless namespace: {}",
                failed.join("; ")
            ))
        }
    }
}
