//! berth's networking, below the daemon: talking to the kernel over rtnetlink
//! (bridges, veth pairs, addresses, routes), network namespaces, address
//! management, the nftables table berth owns, and the embedded DNS server's
//! message handling.

pub mod cidr;
pub mod dns;
pub mod netlink;
pub mod nft;
