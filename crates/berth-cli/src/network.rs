//! Networking on the command line: `run`/`create`'s network flags, `port`, and the
//! `network` commands.

use crate::client::{enc, Client};
use crate::format::print_rows;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `run`/`create`'s network flags.
#[derive(Debug, Args, Clone, Default)]
pub struct NetOpts {
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add link to another container
    #[arg(long)]
    pub link: Vec<String>,
}

/// Expands "8000-8001" into its ports.
fn port_range(s: &str) -> Result<Vec<u16>> {
    let bad = || anyhow::anyhow!("invalid port {s:?}");
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > b {
                bail!("invalid range {s:?}: the start is after the end");
            }
            Ok((a..=b).collect())
        }
        None => Ok(vec![s.parse().map_err(|_| bad())?]),
    }
}

/// One `-p` value: `[ip:][hostPort:]containerPort[/proto]`, ranges allowed, IPv6
/// host addresses in brackets. Returns (container port/proto, host ip, host port).
pub fn parse_publish(spec: &str) -> Result<Vec<(String, String, String)>> {
    let (rest, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        bail!("invalid proto: {proto}");
    }
    // The host address may be a bracketed IPv6 one.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .with_context(|| format!("invalid IP address in {spec:?}"))?;
        (
            ip.to_string(),
            after.strip_prefix(':').unwrap_or(after).to_string(),
        )
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), rest.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => {
                bail!("invalid port format {spec:?}: use [ip:][hostPort:]containerPort[/protocol]")
            }
        }
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid IP address: {ip}");
    }
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest.as_str()),
    };
    if container.is_empty() {
        bail!("no port specified: {spec}<empty>");
    }
    let cports = port_range(container)?;
    if cports.contains(&0) {
        bail!("invalid containerPort: 0");
    }
    let hports: Vec<Option<u16>> = if host.is_empty() {
        vec![None; cports.len()]
    } else {
        let h = port_range(host)?;
        if h.len() == 1 && cports.len() == 1 {
            vec![Some(h[0])]
        } else if h.len() == cports.len() {
            h.into_iter().map(Some).collect()
        } else if cports.len() == 1 {
            // A host range for one container port: Docker picks one from the range;
            // berth takes the first.
            vec![Some(h[0])]
        } else {
            bail!("invalid ranges specified for container and host Ports: {container} and {host}");
        }
    };
    Ok(cports
        .iter()
        .zip(hports)
        .map(|(c, h)| {
            (
                format!("{c}/{proto}"),
                ip.clone(),
                h.map(|p| p.to_string()).unwrap_or_default(),
            )
        })
        .collect())
}

impl NetOpts {
    /// Fills the create request's network fields, as the docker CLI does.
    pub fn apply(
        &self,
        config: &mut berth_api::ContainerConfig,
        hc: &mut berth_api::HostConfig,
    ) -> Result<Option<berth_api::NetworkingConfig>> {
        let mut exposed = config.exposed_ports.clone().unwrap_or_default();
        let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in &self.publish {
            for (key, ip, port) in parse_publish(p)? {
                exposed.insert(key.clone(), json!({}));
                bindings
                    .entry(key)
                    .or_default()
                    .push(json!({ "HostIp": ip, "HostPort": port }));
            }
        }
        for e in &self.expose {
            let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            for port in port_range(p)? {
                exposed.insert(format!("{port}/{}", proto.to_ascii_lowercase()), json!({}));
            }
        }
        if !exposed.is_empty() {
            config.exposed_ports = Some(exposed);
        }
        if !bindings.is_empty() {
            hc.other.insert("PortBindings".into(), json!(bindings));
        }
        if self.publish_all {
            hc.other.insert("PublishAllPorts".into(), json!(true));
        }
        for (key, v) in [
            ("Dns", &self.dns),
            ("DnsSearch", &self.dns_search),
            ("DnsOptions", &self.dns_option),
            ("ExtraHosts", &self.add_host),
            ("Links", &self.link),
        ] {
            if !v.is_empty() {
                hc.other.insert(key.into(), json!(v));
            }
        }
        let first = self
            .network
            .first()
            .cloned()
            .unwrap_or_else(|| "default".into());
        hc.network_mode = first.clone();
        let mut endpoints = BTreeMap::new();
        for (i, n) in self.network.iter().enumerate() {
            let mut ep = berth_api::EndpointSettings::default();
            if i == 0 {
                if !self.network_alias.is_empty() {
                    ep.aliases = Some(self.network_alias.clone());
                }
                if self.ip.is_some() || self.ip6.is_some() {
                    ep.ipam_config = Some(berth_api::EndpointIpamConfig {
                        ipv4_address: self.ip.clone(),
                        ipv6_address: self.ip6.clone(),
                        link_local_ips: None,
                    });
                }
                ep.mac_address = self.mac_address.clone();
            }
            endpoints.insert(n.clone(), ep);
        }
        if self.network.is_empty() && self.mac_address.is_some() {
            endpoints.insert(
                "default".into(),
                berth_api::EndpointSettings {
                    mac_address: self.mac_address.clone(),
                    ..Default::default()
                },
            );
        }
        if self.network.is_empty()
            && (!self.network_alias.is_empty() || self.ip.is_some() || self.ip6.is_some())
        {
            bail!("--network-alias, --ip and --ip6 need a user-defined network (--network)");
        }
        Ok(
            (!endpoints.is_empty()).then_some(berth_api::NetworkingConfig {
                endpoints_config: Some(endpoints),
            }),
        )
    }
}

/// `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub async fn port(c: &Client, container: &str, private: Option<&str>) -> Result<()> {
    let v: Value = c
        .get_json(&format!("/containers/{}/json", enc(container)))
        .await?;
    let ports = v["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let want = private.map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut lines = Vec::new();
    for (key, list) in &ports {
        if want.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in list.as_array().into_iter().flatten() {
            let ip = b["HostIp"].as_str().unwrap_or("");
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let host = format!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""));
            lines.push(if want.is_some() {
                host
            } else {
                format!("{key} -> {host}")
            });
        }
    }
    if lines.is_empty() {
        if let Some(w) = want {
            bail!("Error: No public port '{w}' published for {container}");
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network
    Create {
        /// Driver to manage the Network
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Vec<String>,
        /// IPv4 or IPv6 Gateway for the master subnet
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container ip from a sub-range
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Enable manual container attachment
        #[arg(long)]
        attachable: bool,
        /// Enable or disable IPv6 networking
        #[arg(long)]
        ipv6: bool,
        /// Set metadata on a network
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Provide filter values (e.g. "driver=bridge")
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        /// Only display network IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Do not truncate the output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Format output using a custom template
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "until=<timestamp>")
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        /// Add network-scoped alias for the container
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address
        #[arg(long)]
        ip6: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
}

pub async fn network(c: &Client, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            attachable,
            ipv6,
            label,
            opt,
            name,
        } => {
            if gateway.len() > subnet.len() || ip_range.len() > subnet.len() {
                bail!("every --gateway and --ip-range needs its --subnet");
            }
            let config: Vec<Value> = subnet
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "Subnet": s,
                        "Gateway": gateway.get(i).cloned().unwrap_or_default(),
                        "IPRange": ip_range.get(i).cloned().unwrap_or_default(),
                    })
                })
                .collect();
            let body = json!({
                "Name": name,
                "Driver": driver,
                "Internal": internal,
                "Attachable": attachable,
                "EnableIPv6": ipv6,
                "IPAM": { "Driver": "default", "Config": config },
                "Options": crate::format::kv_map(&opt),
                "Labels": crate::format::kv_map(&label),
            });
            let resp = c.post_json("/networks/create", &body).await?;
            let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
        }
        NetworkCmd::Ls {
            filter,
            quiet,
            no_trunc,
            format,
        } => {
            let list: Vec<Value> = c
                .get_json(&format!(
                    "/networks?filters={}",
                    crate::containers::filters_param(&filter)?
                ))
                .await?;
            let rows: Vec<Value> = list
                .iter()
                .map(|n| {
                    let id = n["Id"].as_str().unwrap_or("");
                    json!({
                        "ID": if no_trunc { id } else { &id[..id.len().min(12)] },
                        "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                        "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
                        "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
                        "CreatedAt": n["Created"],
                        "Labels": n["Labels"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")).unwrap_or_default(),
                    })
                })
                .collect();
            if quiet {
                for r in rows {
                    println!("{}", r["ID"].as_str().unwrap_or(""));
                }
                return Ok(());
            }
            let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT", "Labels": "LABELS"});
            print_rows(
                format.as_deref(),
                "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
                &headers,
                &rows,
            )?;
        }
        NetworkCmd::Inspect { format, networks } => {
            let paths: Vec<String> = networks
                .iter()
                .map(|n| format!("/networks/{}", enc(n)))
                .collect();
            let code = crate::format::inspect_each(c, &paths, format.as_deref()).await?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        NetworkCmd::Rm { networks } => {
            let code = crate::containers::each(&networks, true, |n| async move {
                c.delete(&format!("/networks/{}", enc(&n))).await.map(drop)
            })
            .await?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        NetworkCmd::Prune { force: _, filter } => {
            crate::format::prune(
                c,
                "/networks/prune",
                &filter,
                "NetworksDeleted",
                "Deleted Networks:",
            )
            .await?;
        }
        NetworkCmd::Connect {
            alias,
            ip,
            ip6,
            network,
            container,
        } => {
            let mut ep = json!({ "Aliases": alias });
            if ip.is_some() || ip6.is_some() {
                ep["IPAMConfig"] = json!({ "IPv4Address": ip.unwrap_or_default(), "IPv6Address": ip6.unwrap_or_default() });
            }
            c.post_json(
                &format!("/networks/{}/connect", enc(&network)),
                &json!({ "Container": container, "EndpointConfig": ep }),
            )
            .await?;
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            c.post_json(
                &format!("/networks/{}/disconnect", enc(&network)),
                &json!({ "Container": container, "Force": force }),
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<(String, String, String)> {
        parse_publish(s).unwrap()
    }

    #[test]
    fn publish_specs_like_docker() {
        let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(p("80"), vec![t("80/tcp", "", "")]);
        assert_eq!(p("8080:80"), vec![t("80/tcp", "", "8080")]);
        assert_eq!(
            p("127.0.0.1:8080:80/udp"),
            vec![t("80/udp", "127.0.0.1", "8080")]
        );
        assert_eq!(p("127.0.0.1::80"), vec![t("80/tcp", "127.0.0.1", "")]);
        assert_eq!(p("[::1]:8080:80"), vec![t("80/tcp", "::1", "8080")]);
        assert_eq!(
            p("8000-8001:80-81"),
            vec![t("80/tcp", "", "8000"), t("81/tcp", "", "8001")]
        );
        for bad in [
            "",
            "80/icmp",
            "x:80",
            "1.2.3.4.5:80:80",
            "8000-8002:80-81",
            "90-80",
            "a:b:c:d",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }
}
