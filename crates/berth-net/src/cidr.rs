//! Subnets and address allocation (IPAM) for bridge networks.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 subnet, `address/prefix`, with the host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct BadCidr(pub String);

fn bits(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(*a) as u128,
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

impl Subnet {
    fn mask(&self) -> u128 {
        let width = bits(&self.addr);
        let all: u128 = if width == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        if self.prefix == 0 {
            0
        } else {
            (all << (width - self.prefix)) & all
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && to_u128(ip) & self.mask() == to_u128(&self.addr)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && (self.contains(&other.addr) || other.contains(&self.addr))
    }

    /// The address `n` places into the subnet (`nth(1)` is Docker's gateway).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let size = !self.mask()
            & if self.is_ipv4() {
                u32::MAX as u128
            } else {
                u128::MAX
            };
        (n <= size).then(|| from_u128(to_u128(&self.addr) + n, self.is_ipv4()))
    }

    /// The last address (IPv4's broadcast).
    fn last(&self) -> u128 {
        let size = !self.mask()
            & if self.is_ipv4() {
                u32::MAX as u128
            } else {
                u128::MAX
            };
        to_u128(&self.addr) + size
    }

    /// `ip` with this subnet's prefix, for `ip addr add`.
    pub fn with(&self, ip: IpAddr) -> String {
        format!("{ip}/{}", self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Subnet, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > bits(&addr) {
            return Err(bad());
        }
        let mut n = Subnet { addr, prefix };
        // Like Docker, a subnet given with host bits set is taken as its network.
        n.addr = from_u128(to_u128(&addr) & n.mask(), addr.is_ipv4());
        Ok(n)
    }
}

impl TryFrom<String> for Subnet {
    type Error = BadCidr;
    fn try_from(s: String) -> Result<Subnet, BadCidr> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Picks a free address for a container: inside `range` (the whole subnet when
/// None), never the network address, the IPv4 broadcast, the gateway or anything in
/// `used`; the search starts after `last` (round robin, as Docker does, so that a
/// just-released address is not handed out again at once).
pub fn allocate(
    subnet: &Subnet,
    range: Option<&Subnet>,
    used: &HashSet<IpAddr>,
    last: Option<IpAddr>,
) -> Option<IpAddr> {
    let pool = range.unwrap_or(subnet);
    let v4 = subnet.is_ipv4();
    let lo = to_u128(&pool.addr).max(to_u128(&subnet.addr) + 1);
    let mut hi = pool.last().min(subnet.last());
    if v4 {
        // Not the broadcast address.
        hi = hi.min(subnet.last() - 1);
    }
    if lo > hi {
        return None;
    }
    let span = hi - lo + 1;
    let start = match last.filter(|l| pool.contains(l)) {
        Some(l) => (to_u128(&l) + 1 - lo) % span,
        None => 0,
    };
    // Bounded: a /8 of IPv4 is searched at most once; an IPv6 pool is practically
    // never full, so a bounded look is enough.
    let tries = span.min(1 << 24);
    (0..tries)
        .map(|i| from_u128(lo + (start + i) % span, v4))
        .find(|ip| !used.contains(ip))
}

/// A MAC address derived from an IPv4 address, as Docker makes them
/// (02:42 then the four address bytes).
pub fn mac_for(ip: &IpAddr) -> [u8; 6] {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x02, 0x42, o[12], o[13], o[14], o[15]]
        }
    }
}

/// Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/20 in /20s.
pub fn default_pools() -> Vec<(Subnet, u8)> {
    vec![
        ("172.17.0.0/16".parse().expect("valid"), 16),
        ("172.18.0.0/15".parse().expect("valid"), 16),
        ("172.20.0.0/14".parse().expect("valid"), 16),
        ("172.24.0.0/13".parse().expect("valid"), 16),
        ("192.168.0.0/16".parse().expect("valid"), 20),
    ]
}

/// The first subnet of `size` from `pools` that overlaps nothing in `taken`.
pub fn pick_subnet(pools: &[(Subnet, u8)], taken: &[Subnet]) -> Option<Subnet> {
    for (pool, size) in pools {
        if *size < pool.prefix || !pool.is_ipv4() {
            continue;
        }
        let step = 1u128 << (32 - *size as u32);
        let mut at = to_u128(&pool.addr);
        while at + step - 1 <= pool.last() {
            let cand = Subnet {
                addr: from_u128(at, true),
                prefix: *size,
            };
            if !taken.iter().any(|t| t.overlaps(&cand)) {
                return Some(cand);
            }
            at += step;
        }
    }
    None
}

/// The IPv4 subnets routed on this host (from /proc/net/route), which a new network
/// must not overlap.
pub fn host_routes() -> Vec<Subnet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if mask == 0 {
                return None; // the default route overlaps everything
            }
            let addr = Ipv4Addr::from(u32::from_be(dest));
            let prefix = u32::from_be(mask).count_ones() as u8;
            Some(Subnet {
                addr: IpAddr::V4(addr),
                prefix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        let s: Subnet = "172.18.5.7/16".parse().unwrap();
        assert_eq!(s.to_string(), "172.18.0.0/16");
        assert!(s.contains(&ip("172.18.255.1")));
        assert!(!s.contains(&ip("172.19.0.1")));
        assert_eq!(s.nth(1), Some(ip("172.18.0.1")));
        let v6: Subnet = "fd00:1::/64".parse().unwrap();
        assert!(v6.contains(&ip("fd00:1::5")));
        assert!(!v6.contains(&ip("172.18.0.1")));
        for bad in [
            "172.18.0.0",
            "172.18.0.0/33",
            "x/8",
            "fd00::/129",
            "1.2.3.4/-1",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocation_skips_reserved_and_used_and_goes_round() {
        let s: Subnet = "10.9.0.0/29".parse().unwrap(); // .1-.6 usable, .7 broadcast
        let mut used = HashSet::from([ip("10.9.0.1")]); // the gateway
        let a = allocate(&s, None, &used, None).unwrap();
        assert_eq!(a, ip("10.9.0.2"));
        used.insert(a);
        let b = allocate(&s, None, &used, Some(a)).unwrap();
        assert_eq!(b, ip("10.9.0.3"));
        // After a release, the next one is still handed out round robin.
        used.remove(&a);
        used.insert(b);
        assert_eq!(allocate(&s, None, &used, Some(b)), Some(ip("10.9.0.4")));
        for i in 2..=6 {
            used.insert(ip(&format!("10.9.0.{i}")));
        }
        assert_eq!(allocate(&s, None, &used, Some(b)), None, "full");
    }

    #[test]
    fn allocation_stays_in_the_range() {
        let s: Subnet = "10.9.0.0/24".parse().unwrap();
        let r: Subnet = "10.9.0.128/25".parse().unwrap();
        let used = HashSet::new();
        assert_eq!(allocate(&s, Some(&r), &used, None), Some(ip("10.9.0.128")));
        assert_eq!(
            allocate(&s, Some(&r), &used, Some(ip("10.9.0.254"))),
            Some(ip("10.9.0.128")),
            "wraps inside the range, never the broadcast"
        );
    }

    #[test]
    fn subnets_are_picked_around_taken_ones() {
        let pools = default_pools();
        let taken: Vec<Subnet> = vec![
            "172.17.0.0/16".parse().unwrap(),
            "172.18.0.0/24".parse().unwrap(),
        ];
        assert_eq!(
            pick_subnet(&pools, &taken).unwrap().to_string(),
            "172.19.0.0/16"
        );
        let small = vec![("10.0.0.0/23".parse().unwrap(), 24)];
        let taken: Vec<Subnet> = vec!["10.0.0.0/24".parse().unwrap()];
        assert_eq!(
            pick_subnet(&small, &taken).unwrap().to_string(),
            "10.0.1.0/24"
        );
        let taken: Vec<Subnet> = vec!["10.0.0.0/16".parse().unwrap()];
        assert_eq!(pick_subnet(&small, &taken), None);
    }

    #[test]
    fn docker_style_macs() {
        assert_eq!(mac_for(&ip("172.17.0.2")), [0x02, 0x42, 172, 17, 0, 2]);
    }
}
