//! What a container's network looks like from inside: /etc/hosts and
//! /etc/resolv.conf (berth's own files, bound over the image's), the resolvers
//! the embedded DNS server forwards to, and the legacy `--link` variables.

use super::endpoint::{mode, parse_port_proto, str_list, Mode, NetPrep};
use super::record::parse_link;
use super::record::Record;
use super::{Containers, Error};
use crate::daemon::network::BRIDGE;
use crate::error::{ApiError, ApiResult};
use std::net::IpAddr;

impl Containers {
    /// /etc/hosts and /etc/resolv.conf for this start, written into the container's
    /// directory (bound over the container's files).
    pub(super) fn write_net_files(&self, r: &Record, prep: &NetPrep) -> ApiResult<()> {
        let dir = self.paths.container_dir(&r.id);
        let host_mode = matches!(mode(&r.host_config.network_mode), Mode::Host);
        let shares = matches!(mode(&r.host_config.network_mode), Mode::Container(_));
        if shares {
            // Docker gives a container that joins another's namespace that
            // container's files.
            if let Mode::Container(key) = mode(&r.host_config.network_mode) {
                let other = self.get(key)?;
                let odir = self.paths.container_dir(&other.id);
                for f in ["hosts", "resolv.conf"] {
                    let _ = std::fs::copy(odir.join(f), dir.join(f));
                }
            }
            return Ok(());
        }
        let mut hosts = if host_mode {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
        };
        // --add-host, with host-gateway as the default bridge's gateway.
        for e in str_list(r.host_config.other.get("ExtraHosts")) {
            let (name, ip) = e
                .split_once(':')
                .or_else(|| e.split_once('='))
                .ok_or_else(|| {
                    ApiError::invalid(format!("invalid extra host {e:?}: use name:ip"))
                })?;
            let ip = if ip == "host-gateway" {
                self.net
                    .find(BRIDGE)
                    .and_then(|n| n.pool4().map(|p| p.gateway.to_string()))
                    .ok_or_else(|| ApiError::invalid("host-gateway needs the default bridge"))?
            } else {
                ip.trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .map_err(|_| {
                        ApiError::invalid(format!("invalid IP address in extra host {e:?}"))
                    })?
                    .to_string()
            };
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        // --link (default bridge): the linked container's address under its name and alias.
        for l in str_list(r.host_config.other.get("Links")) {
            let (target, alias) = parse_link(&l);
            if let Ok(other) = self.get(target) {
                let o = other.rec();
                if let Some(ip) = o.endpoints.values().find_map(|e| e.ipv4) {
                    let mut names = vec![alias.to_string()];
                    for n in [o.config.hostname.clone(), o.name.clone()] {
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                    hosts.push_str(&format!("{ip}\t{}\n", names.join(" ")));
                }
            }
        }
        if !host_mode {
            let fqdn = if r.config.domainname.is_empty() {
                r.config.hostname.clone()
            } else {
                format!("{}.{}", r.config.hostname, r.config.domainname)
            };
            let names = if fqdn == r.config.hostname {
                fqdn.clone()
            } else {
                format!("{fqdn} {}", r.config.hostname)
            };
            for ep in prep.endpoints.values() {
                if let Some(ip) = ep.ipv4 {
                    hosts.push_str(&format!("{ip}\t{names}\n"));
                }
                if let Some(ip) = ep.ipv6 {
                    hosts.push_str(&format!("{ip}\t{names}\n"));
                }
            }
        }
        let user_net = prep
            .endpoints
            .values()
            .filter_map(|e| self.net.find(&e.network_id))
            .any(|n| n.user_defined());
        let resolv = self.resolv_conf(r, host_mode, user_net);
        let werr = |file, source| Error::NetFile {
            id: r.id.clone(),
            file,
            source,
        };
        std::fs::write(dir.join("hosts"), hosts).map_err(|e| werr("/etc/hosts", e))?;
        std::fs::write(dir.join("resolv.conf"), resolv).map_err(|e| werr("/etc/resolv.conf", e))?;
        Ok(())
    }

    /// /etc/resolv.conf: --dns/--dns-search/--dns-option (or the daemon's), else the
    /// host's; on user-defined networks the embedded server, which forwards.
    fn resolv_conf(&self, r: &Record, host_mode: bool, embedded: bool) -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let pick = |key: &str, daemon: &[String]| {
            let v = str_list(r.host_config.other.get(key));
            if v.is_empty() {
                daemon.to_vec()
            } else {
                v
            }
        };
        let dns = pick("Dns", &self.net.config.dns);
        let search = pick("DnsSearch", &self.net.config.dns_search);
        let options = pick("DnsOptions", &self.net.config.dns_options);
        if host_mode && dns.is_empty() && search.is_empty() && options.is_empty() {
            return host;
        }
        let field = |l: &str, k: &str| -> Option<Vec<String>> {
            let mut f = l.split_whitespace();
            (f.next() == Some(k)).then(|| f.map(String::from).collect())
        };
        let host_ns: Vec<String> = host
            .lines()
            .filter_map(|l| field(l, "nameserver"))
            .flatten()
            // Loopback resolvers of the host are unreachable from the container's namespace.
            .filter(|a| host_mode || !(a.starts_with("127.") || a == "::1"))
            .collect();
        let host_search: Vec<String> = host
            .lines()
            .filter_map(|l| field(l, "search"))
            .flatten()
            .collect();
        let host_opts: Vec<String> = host
            .lines()
            .filter_map(|l| field(l, "options"))
            .flatten()
            .collect();
        let mut out = String::new();
        let servers = if embedded {
            vec![berth_net::dns::RESOLVER_IP.to_string()]
        } else if dns.is_empty() {
            host_ns
        } else {
            dns
        };
        for s in servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        let search = if search.is_empty() {
            host_search
        } else {
            search
        };
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
        let mut options = if options.is_empty() {
            host_opts
        } else {
            options
        };
        if embedded && !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".into());
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }

    /// The resolvers the embedded DNS server forwards to: --dns (or the daemon's),
    /// else the host's.
    pub(super) fn upstream_dns(&self, r: &Record) -> Vec<IpAddr> {
        let mut v = str_list(r.host_config.other.get("Dns"));
        if v.is_empty() {
            v = self.net.config.dns.clone();
        }
        if v.is_empty() {
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            v = host
                .lines()
                .filter_map(|l| l.strip_prefix("nameserver"))
                .map(|s| s.trim().to_string())
                .collect();
        }
        v.iter().filter_map(|s| s.parse().ok()).collect()
    }

    /// The environment variables `--link` gives (Docker's legacy link variables).
    pub(super) fn link_env(&self, r: &Record) -> Vec<String> {
        let mut env = Vec::new();
        // Only the default bridge's legacy links set variables; on a user-defined
        // network a link is a DNS alias.
        if !matches!(mode(&r.host_config.network_mode), Mode::Bridge) {
            return env;
        }
        for l in str_list(r.host_config.other.get("Links")) {
            let (target, alias) = parse_link(&l);
            let Ok(other) = self.get(target) else {
                continue;
            };
            let o = other.rec();
            let Some(ip) = o.endpoints.values().find_map(|e| e.ipv4) else {
                continue;
            };
            let prefix: String = alias
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            env.push(format!("{prefix}_NAME=/{}/{alias}", r.name));
            let mut ports: Vec<(u16, String)> = o
                .config
                .exposed_ports
                .clone()
                .unwrap_or_default()
                .keys()
                .filter_map(|k| parse_port_proto(k).ok())
                .collect();
            ports.sort();
            if let Some((p, proto)) = ports.first() {
                env.push(format!("{prefix}_PORT={proto}://{ip}:{p}"));
            }
            for (p, proto) in &ports {
                let up = proto.to_ascii_uppercase();
                env.push(format!("{prefix}_PORT_{p}_{up}={proto}://{ip}:{p}"));
                env.push(format!("{prefix}_PORT_{p}_{up}_ADDR={ip}"));
                env.push(format!("{prefix}_PORT_{p}_{up}_PORT={p}"));
                env.push(format!("{prefix}_PORT_{p}_{up}_PROTO={proto}"));
            }
        }
        env
    }
}
