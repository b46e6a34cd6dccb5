//! A small rtnetlink client: just the requests berth needs to build bridges and
//! veth pairs, give them addresses and routes, and remove them. Each request waits
//! for the kernel's acknowledgement, so an error names the operation that failed.
//!
//! A socket belongs to the network namespace it was created in; see
//! [`Netlink::in_namespace`] for one that works inside a container's namespace.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{netlink, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::net::IpAddr;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const IFLA_BRPORT_ISOLATED: u16 = 33;
const IFLA_MACVLAN_MODE: u16 = 1;
const IFLA_IPVLAN_MODE: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_F_NODAD: u8 = 0x02;

const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;

const IFF_UP: u32 = 0x1;

/// A netlink failure: what was being done and the kernel's errno.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Error {
    pub what: String,
    #[source]
    pub source: io::Error,
}

impl Error {
    fn new(what: impl Into<String>, source: io::Error) -> Error {
        Error {
            what: what.into(),
            source,
        }
    }

    /// The kernel's errno, when it gave one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One netlink message under construction: header, fixed part and attributes.
struct Msg {
    buf: Vec<u8>,
    /// Offsets of the length fields of nested attributes still open.
    nests: Vec<usize>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set in send
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        buf.extend_from_slice(fixed);
        buf.resize(align4(buf.len()), 0);
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    fn begin(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Appends raw bytes inside the open nest (a peer's `ifinfomsg`).
    fn raw(&mut self, data: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    fn end(&mut self) -> &mut Msg {
        let start = self.nests.pop().expect("an open nest");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        debug_assert!(self.nests.is_empty());
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// `struct ifinfomsg`.
fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

fn family(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A MAC address as the kernel takes it.
pub type Mac = [u8; 6];

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

pub fn format_mac(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An rtnetlink socket, bound to the namespace it was created in.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> io::Result<Netlink> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE
        )?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 0))?;
        Ok(Netlink { fd, seq: 1 })
    }

    /// A socket inside the network namespace `ns` (made on a short-lived thread that
    /// enters it; the socket stays bound to that namespace).
    pub fn in_namespace(ns: BorrowedFd<'_>) -> io::Result<Netlink> {
        in_netns(ns, Netlink::new)
    }

    /// Sends one request and waits for its acknowledgement; returns the replies that
    /// came before it (for GET requests).
    fn request(&mut self, what: &str, msg: &mut Msg) -> Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        rustix::net::send(&self.fd, bytes, SendFlags::empty())
            .map_err(|e| Error::new(what, e.into()))?;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())
                .map_err(|e| Error::new(what, e.into()))?;
            let mut off = 0;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
                if len < 16 || off + len > n {
                    return Err(Error::new(
                        what,
                        io::Error::other("malformed netlink reply"),
                    ));
                }
                let body = &buf[off + 16..off + len];
                if mseq == seq {
                    match kind {
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes(
                                body.get(0..4)
                                    .ok_or_else(|| {
                                        Error::new(what, io::Error::other("short netlink error"))
                                    })?
                                    .try_into()
                                    .expect("4 bytes"),
                            );
                            return if code == 0 {
                                Ok(replies)
                            } else {
                                Err(Error::new(what, io::Error::from_raw_os_error(-code)))
                            };
                        }
                        NLMSG_DONE => return Ok(replies),
                        _ => replies.push(body.to_vec()),
                    }
                }
                off += align4(len);
            }
        }
    }

    /// The index of the interface `name`, or None when there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<i32>> {
        let mut m = Msg::new(RTM_GETLINK, 0, &ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name);
        match self.request(&format!("looking up interface {name}"), &mut m) {
            Ok(replies) => Ok(replies.first().and_then(|r| {
                r.get(4..8)
                    .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge `name`, up.
    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<()> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, IFF_UP, IFF_UP),
        );
        m.attr_str(IFLA_IFNAME, name);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "bridge")
            .end();
        self.request(&format!("creating bridge {name}"), &mut m)
            .map(drop)
    }

    /// Creates a veth pair: `host` here, attached to the bridge `master` and up, and
    /// `peer` inside the namespace `peer_ns` (down), with `mac` and both ends' `mtu`
    /// when given.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: i32,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
        mac: Option<Mac>,
        mtu: Option<u32>,
    ) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, IFF_UP, IFF_UP),
        );
        m.attr_str(IFLA_IFNAME, host)
            .attr_u32(IFLA_MASTER, master as u32);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, "veth");
        m.begin(IFLA_INFO_DATA).begin(VETH_INFO_PEER);
        // Not up yet: the kernel opens the peer before the pair is joined, which
        // fails (ENOTCONN); the caller sets it up from inside its namespace.
        m.raw(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, peer)
            .attr_u32(IFLA_NET_NS_FD, peer_ns.as_raw_fd() as u32);
        if let Some(mac) = mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.end().end().end();
        self.request(&format!("creating veth pair {host}/{peer}"), &mut m)
            .map(drop)
    }

    /// Creates a macvlan (`kind` "macvlan", `mode` its MACVLAN_MODE_* bit) or an
    /// ipvlan (`kind` "ipvlan", `mode` IPVLAN_MODE_*) interface `name` on the
    /// host's interface `parent`, made directly inside the namespace `ns` (down).
    #[allow(clippy::too_many_arguments)]
    pub fn create_sublink(
        &mut self,
        kind: &str,
        name: &str,
        parent: i32,
        mode: u32,
        ns: BorrowedFd<'_>,
        mac: Option<Mac>,
        mtu: Option<u32>,
    ) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name)
            .attr_u32(IFLA_LINK, parent as u32)
            .attr_u32(IFLA_NET_NS_FD, ns.as_raw_fd() as u32);
        if let Some(mac) = mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, kind);
        m.begin(IFLA_INFO_DATA);
        if kind == "ipvlan" {
            m.attr(IFLA_IPVLAN_MODE, &(mode as u16).to_ne_bytes());
        } else {
            m.attr_u32(IFLA_MACVLAN_MODE, mode);
        }
        m.end().end();
        self.request(
            &format!("creating {kind} {name} on interface {parent}"),
            &mut m,
        )
        .map(drop)
    }

    /// Isolates bridge port `index`: the bridge forwards nothing between two
    /// isolated ports (containers of a network with inter-container communication
    /// off), while the host itself, behind the bridge device, stays reachable.
    pub fn isolate_port(&mut self, index: i32) -> Result<()> {
        let mut fixed = ifinfomsg(index, 0, 0);
        fixed[0] = libc::AF_BRIDGE as u8;
        let mut m = Msg::new(RTM_SETLINK, 0, &fixed);
        m.begin(IFLA_PROTINFO)
            .attr(IFLA_BRPORT_ISOLATED, &[1])
            .end();
        self.request(&format!("isolating bridge port {index}"), &mut m)
            .map(drop)
    }

    /// Sets the MTU of interface `index`.
    pub fn set_mtu(&mut self, index: i32, mtu: u32) -> Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index, 0, 0));
        m.attr_u32(IFLA_MTU, mtu);
        self.request(
            &format!("setting the MTU of interface {index} to {mtu}"),
            &mut m,
        )
        .map(drop)
    }

    /// Sets interface `index` up.
    pub fn set_up(&mut self, index: i32) -> Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index, IFF_UP, IFF_UP));
        self.request(&format!("setting interface {index} up"), &mut m)
            .map(drop)
    }

    /// Deletes the interface `name` (a veth's peer goes with it); absent is fine.
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        let mut m = Msg::new(RTM_DELLINK, 0, &ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name);
        match self.request(&format!("deleting interface {name}"), &mut m) {
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Adds `ip/prefix` to interface `index`. IPv6 addresses skip duplicate address
    /// detection, which would otherwise keep them unusable for a second or more.
    pub fn add_address(&mut self, index: i32, ip: IpAddr, prefix: u8) -> Result<()> {
        let mut fixed = [0u8; 8];
        fixed[0] = family(&ip);
        fixed[1] = prefix;
        fixed[2] = if ip.is_ipv6() { IFA_F_NODAD } else { 0 };
        fixed[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(IFA_LOCAL, &ip_bytes(&ip))
            .attr(IFA_ADDRESS, &ip_bytes(&ip));
        if let IpAddr::V4(a) = ip {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            let bcast = u32::from(a) | !mask;
            m.attr(IFA_BROADCAST, &bcast.to_be_bytes());
        }
        match self.request(&format!("adding address {ip}/{prefix}"), &mut m) {
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Adds the default route through `gateway`.
    pub fn add_default_route(&mut self, gateway: IpAddr) -> Result<()> {
        let mut fixed = [0u8; 12];
        fixed[0] = family(&gateway);
        fixed[4] = RT_TABLE_MAIN;
        fixed[5] = RTPROT_BOOT;
        fixed[6] = 0; // RT_SCOPE_UNIVERSE
        fixed[7] = RTN_UNICAST;
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(RTA_GATEWAY, &ip_bytes(&gateway));
        match self.request(&format!("adding the default route via {gateway}"), &mut m) {
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }
}

/// Runs `f` on a short-lived thread that enters the network namespace `ns`: sockets
/// `f` makes belong to that namespace, and the calling thread's stays as it was.
pub fn in_netns<T: Send + 'static>(
    ns: BorrowedFd<'_>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.try_clone_to_owned()?;
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

/// Writes a sysctl under /proc/sys (e.g. `net/ipv4/conf/br0/route_localnet`).
pub fn sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/{path}"), value)
        .map_err(|e| io::Error::new(e.kind(), format!("setting /proc/sys/{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_sized() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE, &ifinfomsg(0, IFF_UP, IFF_UP));
        m.attr_str(IFLA_IFNAME, "br-x");
        m.begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "bridge")
            .end();
        let b = m.finish(7).to_vec();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // header 16 + ifinfomsg 16, then IFLA_IFNAME: 4 + "br-x\0" padded to 8.
        assert_eq!(u16::from_ne_bytes(b[32..34].try_into().unwrap()), 9);
        assert_eq!(&b[36..41], b"br-x\0");
        // The nest covers its header and the padded kind attribute (4 + "bridge\0" -> 12).
        assert_eq!(u16::from_ne_bytes(b[44..46].try_into().unwrap()), 4 + 12);
        assert_eq!(
            u16::from_ne_bytes(b[46..48].try_into().unwrap()),
            IFLA_LINKINFO | NLA_F_NESTED
        );
    }

    #[test]
    fn macs_parse_and_print() {
        let m = parse_mac("02:42:AC:11:00:02").unwrap();
        assert_eq!(format_mac(&m), "02:42:ac:11:00:02");
        assert!(parse_mac("02:42:ac:11:00").is_none());
        assert!(parse_mac("02:42:ac:11:00:zz").is_none());
        assert!(parse_mac("002:42:ac:11:00:02").is_none());
    }
}
