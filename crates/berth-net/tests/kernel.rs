//! berth-net against the real kernel (root only): a bridge, a namespace, a veth
//! pair between them with addresses and a route, traffic across it, and cleanup.

use berth_net::netlink::Netlink;
use std::os::fd::AsFd;
use std::process::Command;

/// These tests need root: without it they fail, saying so, rather than pass
/// having checked nothing (scripts/test.sh runs as root).
fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "berth-net's kernel tests need root (bridges, namespaces, nftables)"
    );
}

#[test]
fn bridge_veth_and_namespace() {
    require_root();
    let tag = format!("{:06x}", std::process::id() & 0xffffff);
    let br = format!("btnl{tag}");
    let veth = format!("vbtnl{tag}");
    /// Removes the bridge even when an assertion fails.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Netlink::new().and_then(|mut n| n.delete_link(&self.0).map_err(|e| e.source));
        }
    }
    let _cleanup = Cleanup(br.clone());
    let mut nl = Netlink::new().unwrap();
    nl.create_bridge(&br, None).unwrap();
    let bri = nl.link_index(&br).unwrap().expect("bridge exists");
    nl.add_address(bri, "10.251.7.1".parse().unwrap(), 24)
        .unwrap();
    // Creating it twice is EEXIST, named in the error.
    let e = nl.create_bridge(&br, None).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(e.to_string().contains(&br), "{e}");

    let (ns, mut inner) = berth_runtime::sys::in_new_netns(Netlink::new).unwrap();
    nl.create_veth(
        &veth,
        bri,
        "eth0",
        ns.as_fd(),
        Some([2, 0x42, 10, 251, 7, 2]),
        Some(1400),
    )
    .unwrap();
    // The MTU on the host's end; the port isolated on request.
    let sys = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{veth}/{f}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(sys("mtu"), "1400");
    assert_eq!(sys("brport/isolated"), "0");
    let lo = inner.link_index("lo").unwrap().unwrap();
    inner.set_up(lo).unwrap();
    let eth0 = inner
        .link_index("eth0")
        .unwrap()
        .expect("peer in the namespace");
    inner.set_up(eth0).unwrap();
    inner
        .add_address(eth0, "10.251.7.2".parse().unwrap(), 24)
        .unwrap();
    inner
        .add_default_route("10.251.7.1".parse().unwrap())
        .unwrap();
    inner
        .add_address(eth0, "fd00:251:7::2".parse().unwrap(), 64)
        .unwrap();

    // The host reaches the namespace through the bridge.
    let ping = Command::new("busybox")
        .args(["ping", "-c1", "-W2", "10.251.7.2"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // Isolated on request (the host still reaches it: isolation is between ports).
    let port = nl.link_index(&veth).unwrap().unwrap();
    nl.isolate_port(port).unwrap();
    assert_eq!(sys("brport/isolated"), "1");

    drop(inner);
    drop(ns); // the namespace goes, and the veth pair with it
    for _ in 0..100 {
        if nl.link_index(&veth).unwrap().is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(nl.link_index(&veth).unwrap().is_none(), "veth left behind");
    nl.delete_link(&br).unwrap();
    assert!(nl.link_index(&br).unwrap().is_none());
    nl.delete_link(&br).unwrap(); // absent is fine
}

#[test]
fn nft_table_is_replaced_and_removed() {
    use berth_net::nft::{self, Bridge, PortRule, Ruleset};
    require_root();
    let table = format!("berth_kt{}", std::process::id());
    let mut r = Ruleset {
        bridges: vec![Bridge {
            ifname: "btkt0".into(),
            subnet: Some("10.252.0.0/24".parse().unwrap()),
            internal: false,
            masquerade: true,
        }],
        ports: vec![PortRule {
            proto: "tcp".into(),
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 1,
            container_ip: "10.252.0.2".parse().unwrap(),
            container_port: 80,
        }],
    };
    r.apply(&table).unwrap();
    let list = |t: &str| {
        let o = Command::new("nft")
            .args(["list", "table", "inet", t])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (ok, text) = list(&table);
    assert!(ok);
    assert!(text.contains("dnat ip to 10.252.0.2:80"), "{text}");
    // Applying again replaces, never duplicates.
    r.ports.clear();
    r.apply(&table).unwrap();
    let (_, text) = list(&table);
    assert!(!text.contains("dnat ip to"), "{text}");
    nft::remove(&table).unwrap();
    assert!(!list(&table).0, "table left behind");
    nft::remove(&table).unwrap();
}
