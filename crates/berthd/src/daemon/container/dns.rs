//! The embedded DNS server of user-defined networks: berthd binds 127.0.0.11:53
//! (UDP and TCP) inside each such container's network namespace and answers
//! container names, short ids and network aliases with the addresses on the
//! networks the asking container shares with them. Other names go to the
//! container's upstream resolvers, relayed unchanged.

use crate::daemon::container::record::Status;
use crate::daemon::container::Containers;
use berth_net::dns::{self, Question};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TTL: u32 = 600;

/// The server's sockets, bound inside a container's namespace.
pub type Sockets = (std::net::UdpSocket, std::net::TcpListener);

/// Binds the server's sockets inside the namespace `ns` (on a thread that enters
/// it; the sockets stay in that namespace). Done before the container runs, so that
/// its first query waits in the socket rather than finding nothing there.
pub fn bind_in(ns: BorrowedFd<'_>) -> std::io::Result<Sockets> {
    berth_net::netlink::in_netns(ns, || {
        let addr: SocketAddr = format!("{}:53", dns::RESOLVER_IP).parse().expect("valid");
        let udp = std::net::UdpSocket::bind(addr)?;
        let tcp = std::net::TcpListener::bind(addr)?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok((udp, tcp))
    })
}

impl Containers {
    /// Starts the embedded server for container `id` in namespace `ns`.
    pub(super) fn start_dns(self: &Arc<Self>, id: &str, ns: BorrowedFd<'_>) {
        match bind_in(ns) {
            Ok(s) => self.serve_dns(id, s),
            Err(e) => {
                tracing::error!(container = %id, error = %e, "starting the embedded DNS server")
            }
        }
    }

    /// Serves DNS for container `id` on sockets bound with [`bind_in`].
    pub(super) fn serve_dns(self: &Arc<Self>, id: &str, (udp, tcp): Sockets) {
        let (udp, tcp) = match (
            tokio::net::UdpSocket::from_std(udp),
            tokio::net::TcpListener::from_std(tcp),
        ) {
            (Ok(u), Ok(t)) => (Arc::new(u), t),
            _ => return,
        };
        let me = self.clone();
        let cid = id.to_string();
        let u = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                let query = buf[..n].to_vec();
                let me = me.clone();
                let cid = cid.clone();
                let udp = udp.clone();
                tokio::spawn(async move {
                    if let Some(reply) = me.dns_reply(&cid, &query).await {
                        let _ = udp.send_to(&reply, peer).await;
                    }
                });
            }
        });
        let me = self.clone();
        let cid = id.to_string();
        let t = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    return;
                };
                let me = me.clone();
                let cid = cid.clone();
                tokio::spawn(async move {
                    // Messages framed by a two-byte length, as many as the client sends.
                    let _ = tokio::time::timeout(Duration::from_secs(10), async {
                        loop {
                            let mut len = [0u8; 2];
                            s.read_exact(&mut len).await?;
                            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                            s.read_exact(&mut q).await?;
                            let Some(reply) = me.dns_reply(&cid, &q).await else {
                                return Ok::<(), std::io::Error>(());
                            };
                            s.write_all(&(reply.len() as u16).to_be_bytes()).await?;
                            s.write_all(&reply).await?;
                        }
                    })
                    .await;
                });
            }
        });
        self.dns_tasks()
            .insert(id.to_string(), vec![u.abort_handle(), t.abort_handle()]);
    }

    /// Stops a container's server; its sockets close, releasing the namespace.
    pub(super) fn stop_dns(&self, id: &str) {
        if let Some(tasks) = self.dns_tasks().remove(id) {
            for t in tasks {
                t.abort();
            }
        }
    }

    /// The answer to one query from container `from`.
    async fn dns_reply(&self, from: &str, query: &[u8]) -> Option<Vec<u8>> {
        let q: Question = dns::parse_query(query)?;
        if q.qtype == dns::TYPE_PTR {
            if let Some(name) = dns::reverse_ip(&q.name).and_then(|ip| self.dns_ptr(from, ip)) {
                return Some(dns::answer_ptr(query, &q, &name, TTL));
            }
        } else if let Some(ips) = self.dns_lookup(from, &q.name) {
            return Some(dns::answer(query, &q, &ips, TTL));
        }
        // Not a name of ours: the container's upstream resolvers answer.
        let upstream = self.get(from).ok().map(|c| self.upstream_dns(&c.rec()))?;
        for server in upstream {
            if let Some(reply) = relay(query, SocketAddr::new(server, 53)).await {
                return Some(reply);
            }
        }
        Some(dns::empty(query, &q, dns::RCODE_SERVFAIL))
    }

    /// The user-defined networks container `from` is on.
    fn dns_networks(&self, from: &str) -> Vec<(String, String)> {
        let Ok(c) = self.get(from) else {
            return vec![];
        };
        let r = c.rec();
        r.endpoints
            .iter()
            .filter(|(_, e)| e.ipv4.is_some())
            .filter_map(|(name, e)| {
                self.net
                    .find(&e.network_id)
                    .filter(|n| n.user_defined())
                    .map(|_| (e.network_id.clone(), name.clone()))
            })
            .collect()
    }

    /// Addresses of `name` (a container name, short id or alias, optionally
    /// followed by `.<network>`) on the networks `from` is on; None if no container
    /// there has that name.
    pub(super) fn dns_lookup(&self, from: &str, name: &str) -> Option<Vec<IpAddr>> {
        let nets = self.dns_networks(from);
        let mut ips = Vec::new();
        // The asking container's own link aliases (`--link target:alias` on a
        // user-defined network) name the target there, for it alone.
        if let Ok(me) = self.get(from) {
            let links: Vec<(String, String, String)> = me
                .rec()
                .endpoints
                .values()
                .flat_map(|e| {
                    e.links.iter().map(|l| {
                        let (t, a) = super::record::parse_link(l);
                        (e.network_id.clone(), t.to_string(), a.to_string())
                    })
                })
                .collect();
            for (net_id, target, alias) in links {
                if !alias.eq_ignore_ascii_case(name) {
                    continue;
                }
                if let Ok(t) = self.get(&target) {
                    let r = t.rec();
                    if let Some(ep) = r.endpoints.values().find(|e| e.network_id == net_id) {
                        ips.extend(ep.ipv4);
                        ips.extend(ep.ipv6);
                    }
                }
            }
            if !ips.is_empty() {
                return Some(ips);
            }
        }
        for (net_id, net_name) in &nets {
            let suffix = format!(".{}", net_name.to_ascii_lowercase());
            let short = name.strip_suffix(&suffix).unwrap_or(name);
            for c in self.all() {
                let r = c.rec();
                if r.state.status != Status::Running {
                    continue;
                }
                let Some(ep) = r.endpoints.values().find(|e| &e.network_id == net_id) else {
                    continue;
                };
                let matches = r.name.eq_ignore_ascii_case(short)
                    || (short.len() == 12 && r.id.starts_with(short))
                    || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(short));
                if matches {
                    ips.extend(ep.ipv4);
                    ips.extend(ep.ipv6);
                }
            }
        }
        (!ips.is_empty()).then_some(ips)
    }

    /// The name of the container with address `ip` on a network `from` is on.
    fn dns_ptr(&self, from: &str, ip: IpAddr) -> Option<String> {
        let nets = self.dns_networks(from);
        for c in self.all() {
            let r = c.rec();
            for (name, ep) in &r.endpoints {
                if (ep.ipv4 == Some(ip) || ep.ipv6 == Some(ip))
                    && nets.iter().any(|(id, _)| id == &ep.network_id)
                {
                    return Some(format!("{}.{name}", r.name));
                }
            }
        }
        None
    }
}

/// Sends `query` to `server` over UDP and returns its answer (3 s at most).
async fn relay(query: &[u8], server: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    let s = tokio::net::UdpSocket::bind(bind).await.ok()?;
    s.connect(server).await.ok()?;
    s.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    // Only an answer to this query.
    (buf.len() >= 2 && buf[..2] == query[..2]).then_some(buf)
}
