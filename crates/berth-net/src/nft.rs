//! The nftables table berth owns. It is derived state: berthd renders the whole
//! table from its networks and running containers and replaces it in one atomic
//! `nft -f` transaction, so a crash can never leave half a change behind, a restart
//! reconciles by rendering again, and no rule outside berth's own table is touched.

use crate::cidr::Subnet;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// A bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bridge {
    pub ifname: String,
    pub subnet: Option<Subnet>,
    /// `--internal`: no traffic in or out of the bridge, no NAT.
    pub internal: bool,
    /// Masquerade outbound traffic (com.docker.network.bridge.enable_ip_masquerade).
    pub masquerade: bool,
}

/// One published port: host side to container side.
#[derive(Debug, Clone, PartialEq)]
pub struct PortRule {
    /// "tcp", "udp" or "sctp".
    pub proto: String,
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ruleset {
    pub bridges: Vec<Bridge>,
    pub ports: Vec<PortRule>,
}

fn quote(s: &str) -> String {
    // Interface names are checked to be plain ([A-Za-z0-9_.-]) before they get here.
    format!("\"{s}\"")
}

impl Ruleset {
    /// The nft script that replaces `table` with this ruleset.
    pub fn render(&self, table: &str) -> String {
        let mut s = String::new();
        // Create-then-delete makes the delete valid whether or not the table exists;
        // the whole script is one transaction.
        let _ = writeln!(
            s,
            "table inet {table}\ndelete table inet {table}\ntable inet {table} {{"
        );
        s.push_str("  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    fib daddr type local jump ports\n  }\n");
        s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump ports\n  }\n");
        s.push_str("  chain ports {\n");
        for p in &self.ports {
            let (fam, daddr) = match (p.host_ip, p.container_ip) {
                (Some(ip @ IpAddr::V4(_)), _) => ("ip", format!("ip daddr {ip} ")),
                (Some(ip @ IpAddr::V6(_)), _) => ("ip6", format!("ip6 daddr {ip} ")),
                (None, IpAddr::V4(_)) => ("ip", "meta nfproto ipv4 ".to_string()),
                // ::1 is the shim's (no route leads from it into a bridge).
                (None, IpAddr::V6(_)) => ("ip6", "ip6 daddr != ::1 ".to_string()),
            };
            let to = match p.container_ip {
                IpAddr::V4(a) => format!("{a}:{}", p.container_port),
                IpAddr::V6(a) => format!("[{a}]:{}", p.container_port),
            };
            let _ = writeln!(
                s,
                "    {daddr}{} dport {} dnat {fam} to {to}",
                p.proto, p.host_port
            );
        }
        s.push_str("  }\n");
        s.push_str(
            "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n",
        );
        for b in &self.bridges {
            let br = quote(&b.ifname);
            // Published ports reached through 127.0.0.1 (route_localnet is on for the
            // bridge) and containers reaching a port published by a neighbour
            // (hairpin): the reply must come back through the host.
            let _ = writeln!(s, "    oifname {br} ip saddr 127.0.0.0/8 masquerade");
            let _ = writeln!(s, "    iifname {br} oifname {br} ct status dnat masquerade");
            if let Some(net) = b
                .subnet
                .filter(|n| n.is_ipv4() && !b.internal && b.masquerade)
            {
                let _ = writeln!(s, "    ip saddr {net} oifname != {br} masquerade");
            }
        }
        s.push_str("  }\n");
        s.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
        for b in &self.bridges {
            let br = quote(&b.ifname);
            if b.internal {
                let _ = writeln!(s, "    iifname {br} oifname != {br} drop");
                let _ = writeln!(s, "    oifname {br} iifname != {br} drop");
            }
            // Networks are isolated from each other.
            let others: Vec<String> = self
                .bridges
                .iter()
                .filter(|o| o.ifname != b.ifname)
                .map(|o| quote(&o.ifname))
                .collect();
            if !others.is_empty() {
                let _ = writeln!(
                    s,
                    "    iifname {br} oifname {{ {} }} drop",
                    others.join(", ")
                );
            }
        }
        s.push_str("  }\n}\n");
        s
    }

    /// Replaces `table` with this ruleset.
    pub fn apply(&self, table: &str) -> io::Result<()> {
        run_nft(&self.render(table))
    }
}

/// berth's table for a daemon with data root `data_root`: "berth" for the default
/// one, else one named after the data root, so that daemons side by side never touch
/// each other's rules.
pub fn table_for(data_root: &std::path::Path) -> String {
    if data_root == std::path::Path::new("/var/lib/berth") {
        return "berth".into();
    }
    // FNV-1a: stable across builds and versions.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data_root.as_os_str().as_encoded_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("berth_{:08x}", h as u32)
}

/// Removes `table` (absent is fine).
pub fn remove(table: &str) -> io::Result<()> {
    run_nft(&format!("table inet {table}\ndelete table inet {table}\n"))
}

fn run_nft(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running nft (is nftables installed?): {e}"),
            )
        })?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nat_isolation_and_ports() {
        let r = Ruleset {
            bridges: vec![
                Bridge {
                    ifname: "berth0".into(),
                    subnet: Some("172.17.0.0/16".parse().unwrap()),
                    internal: false,
                    masquerade: true,
                },
                Bridge {
                    ifname: "br-1".into(),
                    subnet: Some("10.1.0.0/24".parse().unwrap()),
                    internal: true,
                    masquerade: true,
                },
            ],
            ports: vec![
                PortRule {
                    proto: "tcp".into(),
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: 18080,
                    container_ip: "172.17.0.2".parse().unwrap(),
                    container_port: 80,
                },
                PortRule {
                    proto: "udp".into(),
                    host_ip: None,
                    host_port: 5353,
                    container_ip: "172.17.0.3".parse().unwrap(),
                    container_port: 53,
                },
            ],
        };
        let s = r.render("berth_t");
        assert!(s.starts_with("table inet berth_t\ndelete table inet berth_t\n"));
        assert!(s.contains("ip daddr 127.0.0.1 tcp dport 18080 dnat ip to 172.17.0.2:80"));
        assert!(s.contains("meta nfproto ipv4 udp dport 5353 dnat ip to 172.17.0.3:53"));
        assert!(s.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(
            !s.contains("ip saddr 10.1.0.0/24"),
            "internal networks are not NATed"
        );
        assert!(s.contains("iifname \"br-1\" oifname != \"br-1\" drop"));
        assert!(s.contains("iifname \"berth0\" oifname { \"br-1\" } drop"));
        assert!(s.contains("iifname \"br-1\" oifname { \"berth0\" } drop"));
    }
}
