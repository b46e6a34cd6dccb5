//! Networking through the real docker CLI and berth: user-defined networks with DNS
//! and aliases, isolation, connect/disconnect, published ports (TCP, UDP, random,
//! conflicts), network modes, links, DNS and hosts options, and cleanup after a
//! crash. Traffic goes only to loopback, to the test's own bridges and to its
//! containers.

use berth_tests::archive::{image, Layer};
use berth_tests::{bin, wait_until, Daemon};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// A GET over plain HTTP/1.0; the body, or None if nothing answered.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// An httpd serving `text` at /index.html.
fn httpd_cmd(text: &str) -> String {
    format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www")
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nft_table(d: &Daemon) -> String {
    let t = berth_net::nft::table_for(&d.data_root);
    let o = std::process::Command::new("nft")
        .args(["list", "table", "inet", &t])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn inspect(d: &Daemon, what: &str, fmt: &str) -> String {
    d.docker(&["inspect", "-f", fmt, what])
        .ok()
        .trim()
        .to_string()
}

#[test]
fn user_networks_resolve_names_and_aliases_and_are_isolated() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["network", "create", "front"]).ok();
    d.docker(&["network", "create", "back"]).ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "www",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // By name and by alias, with the embedded DNS server and ping.
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup web; nslookup www && ping -c1 -W2 web && ping -c1 -W2 www",
    ]);
    let web_ip = inspect(&d, "web", "{{.NetworkSettings.Networks.front.IPAddress}}");
    assert!(!web_ip.is_empty());
    let out = o.ok();
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert!(out.contains(&format!("Address: {web_ip}")), "{out}");
    assert!(out.contains("1 packets received"), "{out}");
    // The short id resolves too.
    let short = inspect(&d, "web", "{{.Id}}")[..12].to_string();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "nslookup",
        &short,
    ]);
    assert!(o.ok().contains(&web_ip), "{o:?}");

    // Another network cannot reach web, by name or address...
    d.docker(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "back",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let ping = |who: &str| d.docker(&["exec", who, "ping", "-c1", "-W1", &web_ip]).code;
    assert_ne!(ping("other"), 0, "networks must be isolated");
    assert_ne!(d.docker(&["exec", "other", "nslookup", "web"]).code, 0);
    // ...until it is connected (an interface appears live), and not after disconnect.
    d.docker(&["network", "connect", "front", "other"]).ok();
    let links = d
        .docker(&["exec", "other", "ip", "-o", "link"])
        .ok()
        .to_string();
    assert!(links.contains("eth1"), "{links}");
    assert_eq!(ping("other"), 0);
    assert_eq!(d.docker(&["exec", "other", "nslookup", "web"]).code, 0);
    d.docker(&["network", "disconnect", "front", "other"]).ok();
    let links = d
        .docker(&["exec", "other", "ip", "-o", "link"])
        .ok()
        .to_string();
    assert!(!links.contains("eth1"), "{links}");
    assert_ne!(ping("other"), 0);

    // The network shows its containers; one in use cannot go.
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "front",
    ]);
    assert_eq!(o.ok().trim(), "web");
    let o = d.docker(&["network", "rm", "front"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("has active endpoints"), "{o:?}");
    let o = d.docker(&[
        "network",
        "ls",
        "--filter",
        "type=custom",
        "--format",
        "{{.Name}}",
    ]);
    let mut names: Vec<&str> = o.ok().lines().collect();
    names.sort();
    assert_eq!(names, ["back", "front"]);
    d.docker(&["rm", "-f", "web", "other"]).ok();
    let o = d.docker(&["network", "prune", "-f"]);
    assert!(o.ok().contains("front") && o.ok().contains("back"), "{o:?}");
    assert_eq!(
        d.docker(&["network", "ls", "-q"]).ok().lines().count(),
        3,
        "bridge, host, none stay"
    );
    // Their bridges went with them.
    for b in d.bridges().iter().skip(1) {
        assert!(
            berth_net::netlink::Netlink::new()
                .unwrap()
                .link_index(b)
                .unwrap()
                .is_none(),
            "{b}"
        );
    }
}

#[test]
fn default_bridge_has_no_names_but_links_work() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run", "-d", "--name", "db", "--expose", "5432", "busybox", "sleep", "300",
    ])
    .ok();
    let db_ip = inspect(&d, "db", "{{.NetworkSettings.IPAddress}}");
    assert!(db_ip.starts_with("10."), "{db_ip}");
    // No DNS on the default bridge, as in Docker: the name does not resolve.
    let o = d.docker(&["run", "--rm", "busybox", "ping", "-c1", "-W1", "db"]);
    assert_ne!(o.code, 0, "{o:?}");
    // The address is reachable, and --link gives a name and Docker's variables.
    let o = d.docker(&[
        "run",
        "--rm",
        "--link",
        "db:database",
        "busybox",
        "sh",
        "-c",
        "ping -c1 -W2 database >/dev/null && echo reached; env | grep ^DATABASE_ | sort",
    ]);
    let out = o.ok();
    assert!(out.contains("reached"), "{out}");
    assert!(
        out.contains(&format!("DATABASE_PORT_5432_TCP_ADDR={db_ip}")),
        "{out}"
    );
    assert!(out.contains("DATABASE_NAME=/"), "{out}");
    // A link to a container that does not exist is refused at create.
    let o = d.docker(&["run", "--rm", "--link", "nope:x", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nope"), "{o:?}");
    // `docker rm --link` removes a link from its parent: gone from its next start.
    d.docker(&[
        "create",
        "--name",
        "web",
        "--link",
        "db:database",
        "busybox",
        "cat",
        "/etc/hosts",
    ])
    .ok();
    d.docker(&["rm", "--link", "/web/database"]).ok();
    assert_eq!(inspect(&d, "web", "{{json .HostConfig.Links}}"), "[]");
    let o = d.docker(&["start", "-a", "web"]);
    assert!(!o.ok().contains("database"), "{o:?}");
    let o = d.docker(&["rm", "--link", "/web/database"]);
    assert!(
        o.stderr.contains("Could not find link /web/database"),
        "{o:?}"
    );
    d.docker(&["rm", "-f", "db", "web"]).ok();
}

#[test]
fn published_ports_reach_the_container_from_host_and_neighbours() {
    let d = Daemon::start();
    d.load_busybox();
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("hello-berth"),
    ])
    .ok();
    let addr = format!("127.0.0.1:{port}");
    wait_until("httpd answers on the published port", || {
        http_get(&addr, "/index.html").is_some_and(|b| b.contains("hello-berth"))
    });
    assert_eq!(
        d.docker(&["port", "web"]).ok().trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    let ports = inspect(&d, "web", "{{json .NetworkSettings.Ports}}");
    assert_eq!(
        ports,
        format!("{{\"80/tcp\":[{{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"{port}\"}}]}}")
    );
    assert!(d
        .docker(&["ps", "--format", "{{.Ports}}"])
        .ok()
        .contains(&format!("127.0.0.1:{port}->80/tcp")));

    // On every address: reachable through the bridge's host address too, and from
    // another container (hairpin through the host).
    let all = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web2",
        "-p",
        &format!("{all}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("second"),
    ])
    .ok();
    let gw = inspect(&d, "web2", "{{.NetworkSettings.Gateway}}");
    wait_until("httpd on the host's bridge address", || {
        http_get(&format!("{gw}:{all}"), "/index.html").is_some_and(|b| b.contains("second"))
    });
    assert!(
        http_get(&format!("127.0.0.1:{all}"), "/index.html").is_some_and(|b| b.contains("second"))
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "wget",
        "-qO-",
        &format!("http://{gw}:{all}/index.html"),
    ]);
    assert!(o.ok().contains("second"), "{o:?}");

    // -P: every exposed port on a random host port, which `docker port` reports.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "any",
        "-P",
        "--expose",
        "80",
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("random"),
    ])
    .ok();
    let mapped = d.docker(&["port", "any", "80"]).ok().trim().to_string();
    let rport = mapped.rsplit(':').next().unwrap().to_string();
    assert!(rport.parse::<u16>().unwrap() >= 1024, "{mapped}");
    wait_until("httpd on the random port", || {
        http_get(&format!("127.0.0.1:{rport}"), "/index.html").is_some_and(|b| b.contains("random"))
    });

    // After the containers go, their rules go.
    d.docker(&["rm", "-f", "web", "web2", "any"]).ok();
    let t = nft_table(&d);
    assert!(!t.contains("dnat ip to"), "{t}");
    assert!(http_get(&addr, "/").is_none());
}

#[test]
fn a_host_port_in_use_is_a_clear_error_and_leaves_no_rule() {
    let d = Daemon::start();
    d.load_busybox();
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sleep",
        "30",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains(&format!("0.0.0.0:{port}/tcp")), "{o:?}");
    assert!(o.stderr.contains("address already in use"), "{o:?}");
    assert!(!nft_table(&d).contains(&format!("dport {port}")));
    assert_eq!(inspect(&d, "clash", "{{.State.Status}}"), "created");
    // While a container holds a port, nobody else can take it.
    drop(taken);
    let p2 = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "holder",
        "-p",
        &format!("{p2}:80"),
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    assert!(TcpListener::bind(format!("0.0.0.0:{p2}")).is_err());
    let o = d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("{p2}:80"),
        "busybox",
        "sleep",
        "30",
    ]);
    assert!(o.stderr.contains("address already in use"), "{o:?}");
    d.docker(&["rm", "-f", "holder"]).ok();
    wait_until("the port is free again", || {
        TcpListener::bind(format!("0.0.0.0:{p2}")).is_ok()
    });
}

/// Sends `msg` from a socket bound at `local` to the published `to` until the
/// container's udp-echo sends it back.
fn wait_for_echo(local: &str, to: &str, msg: &[u8]) {
    let s = UdpSocket::bind(local).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    wait_until(&format!("the echo comes back from {to}"), || {
        s.send_to(msg, to).unwrap();
        matches!(s.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == msg)
    });
}

/// Loads `udpecho:1`: an image of the udp-echo helper answering on port 9000.
fn load_udp_echo(d: &Daemon) {
    let echo = std::fs::read(bin("udp-echo")).unwrap();
    let img = image(
        &[Layer::new().executable("udp-echo", &echo).finish()],
        "udpecho:1",
        &["/udp-echo", "9000"],
    );
    let tar = d.root.path().join("udpecho.tar");
    std::fs::write(&tar, img).unwrap();
    d.docker(&["load", "-i", tar.to_str().unwrap()]).ok();
}

#[test]
fn udp_is_published_too() {
    let d = Daemon::start();
    load_udp_echo(&d);
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        &format!("127.0.0.1:{port}:9000/udp"),
        "udpecho:1",
    ])
    .ok();
    assert_eq!(
        d.docker(&["port", "echo"]).ok().trim(),
        format!("9000/udp -> 127.0.0.1:{port}")
    );
    wait_for_echo("127.0.0.1:0", &format!("127.0.0.1:{port}"), b"ping-udp");
    d.docker(&["rm", "-f", "echo"]).ok();
}

#[test]
fn network_modes_none_host_and_container() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    let links: Vec<&str> = o.ok().lines().collect();
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(links[0].contains("lo:"));
    // The host's namespace: berth's own bridge is visible.
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(o.ok().contains(&d.bridge), "{o:?}");
    // Joining web's namespace: its loopback-only server is reachable.
    d.docker(&["run", "-d", "--name", "web", "busybox", "sh", "-c",
        "mkdir -p /www && echo only-local > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"]).ok();
    let o = d.docker(&["run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1:8080/index.html && exit 0; sleep 0.2; done; exit 1"]);
    assert!(o.ok().contains("only-local"), "{o:?}");
    assert_eq!(inspect(&d, "web", "{{.HostConfig.NetworkMode}}"), "bridge");
    // A namespace of a container that is not running cannot be joined.
    d.docker(&["create", "--name", "idle", "busybox", "true"])
        .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:idle",
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("not running"), "{o:?}");
    let o = d.docker(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert!(o.stderr.contains("network nosuchnet not found"), "{o:?}");
    d.docker(&["rm", "-f", "web"]).ok();
}

#[test]
fn dns_hosts_and_address_options() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "network",
        "create",
        "--subnet",
        "10.251.40.0/24",
        "--ip-range",
        "10.251.40.128/25",
        "--gateway",
        "10.251.40.254",
        "--label",
        "team=a",
        "statics",
    ])
    .ok();
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}} {{.Labels.team}}",
        "statics",
    ]);
    assert_eq!(
        o.ok().trim(),
        "10.251.40.0/24 10.251.40.254 10.251.40.128/25 a"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "statics",
        "--ip",
        "10.251.40.7",
        "--mac-address",
        "02:42:de:ad:be:ef",
        "--hostname",
        "box",
        "--domainname",
        "example.test",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "other.test:10.9.9.9",
        "--dns-search",
        "corp.test",
        "--dns-option",
        "timeout:2",
        "busybox",
        "sh",
        "-c",
        "ip -o addr show eth0; ip -o link show eth0; cat /etc/hosts /etc/resolv.conf; hostname",
    ]);
    let out = o.ok();
    assert!(out.contains("inet 10.251.40.7/24"), "{out}");
    assert!(out.contains("02:42:de:ad:be:ef"), "{out}");
    assert!(out.contains("10.9.9.9\tother.test"), "{out}");
    assert!(out.contains("10.251.40.7\tbox.example.test box"), "{out}");
    assert!(out.contains("search corp.test"), "{out}");
    assert!(out.contains("timeout:2"), "{out}");
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    let gw = d
        .docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "bridge",
        ])
        .ok()
        .trim()
        .to_string();
    assert!(out.contains(&format!("{gw}\tgw")), "{out}");
    // Addresses come from the range; a taken --ip is refused; one outside the subnet too.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "aa",
        "--network",
        "statics",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let a = inspect(&d, "aa", "{{.NetworkSettings.Networks.statics.IPAddress}}");
    assert!(
        a.starts_with("10.251.40.1") && a.rsplit('.').next().unwrap().parse::<u8>().unwrap() >= 128,
        "{a}"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "statics",
        "--ip",
        &a,
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("Address already in use"), "{o:?}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "statics",
        "--ip",
        "10.99.0.1",
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("no configured subnet"), "{o:?}");
    // Bad network options are named.
    let o = d.docker(&[
        "network",
        "create",
        "--subnet",
        "10.251.40.0/25",
        "overlapping",
    ]);
    assert!(o.stderr.contains("overlaps"), "{o:?}");
    let o = d.docker(&["network", "create", "--subnet", "nonsense", "bad"]);
    assert_ne!(o.code, 0);
    let o = d.docker(&[
        "network",
        "create",
        "-o",
        "com.docker.network.driver.mtu=70000",
        "jumbo",
    ]);
    assert!(o.stderr.contains("invalid MTU number: 70000"), "{o:?}");
    let o = d.docker(&["network", "create", "-d", "overlay", "swarmy"]);
    assert!(o.stderr.contains("overlay"), "{o:?}");
    d.docker(&["rm", "-f", "aa"]).ok();
    d.docker(&["network", "rm", "statics"]).ok();
}

#[test]
fn ipv6_networks_give_both_families() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:b:e:1::/64",
        "v6net",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "six",
        "--network",
        "v6net",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let ip6 = inspect(
        &d,
        "six",
        "{{.NetworkSettings.Networks.v6net.GlobalIPv6Address}}",
    );
    assert!(ip6.starts_with("fd00:b:e:1::"), "{ip6}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "v6net",
        "busybox",
        "sh",
        "-c",
        &format!("ping -c1 -W2 {ip6} && nslookup -type=aaaa six"),
    ]);
    assert!(o.ok().contains(&ip6), "{o:?}");
    d.docker(&["rm", "-f", "six"]).ok();
}

#[test]
fn berth_cli_networks_and_ports() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.berth(&["network", "create", "--label", "x=y", "bnet"]);
    let id = o.ok().trim().to_string();
    assert_eq!(id.len(), 64);
    let ls = d.berth(&["network", "ls"]);
    assert!(ls.ok().starts_with("NETWORK ID"), "{ls:?}");
    assert!(ls.ok().contains("bnet"));
    let o = d.berth(&["network", "ls", "-q", "--no-trunc", "--filter", "label=x=y"]);
    assert_eq!(o.ok().trim(), id, "filters reach the daemon");
    let port = free_port();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "bnet",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("via-berth"),
    ])
    .ok();
    wait_until("httpd through berth's port", || {
        http_get(&format!("127.0.0.1:{port}"), "/index.html")
            .is_some_and(|b| b.contains("via-berth"))
    });
    assert_eq!(
        d.berth(&["port", "web", "80"]).ok().trim(),
        format!("127.0.0.1:{port}")
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "bnet",
        "busybox",
        "wget",
        "-qO-",
        "http://web/index.html",
    ]);
    assert!(o.ok().contains("via-berth"), "{o:?}");
    let o = d.berth(&["run", "--rm", "-p", "80/icmp", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("icmp"), "{o:?}");
    let o = d.berth(&["network", "rm", "bnet"]);
    assert_ne!(o.code, 0);
    d.berth(&["rm", "-f", "web"]).ok();
    d.berth(&["network", "rm", "bnet"]).ok();
}

#[test]
fn crash_and_restart_reconciles_rules_and_addresses() {
    let mut d = Daemon::start();
    d.load_busybox();
    let (p1, p2) = (free_port(), free_port());
    d.docker(&[
        "run",
        "-d",
        "--name",
        "keeps",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("kept"),
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "dies",
        "-p",
        &format!("127.0.0.1:{p2}:80"),
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    d.docker(&["network", "create", "svc"]).ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "svc",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "svc",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let keeps_ip = inspect(&d, "keeps", "{{.NetworkSettings.IPAddress}}");
    let dies_pid: i32 = inspect(&d, "dies", "{{.State.Pid}}").parse().unwrap();
    d.kill9();
    // While berthd is down, one container dies.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(dies_pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    berth_tests::wait_pid_exit(dies_pid);
    d.spawn();
    let t = nft_table(&d);
    assert!(t.contains(&format!("dport {p1}")), "{t}");
    assert!(!t.contains(&format!("dport {p2}")), "{t}");
    wait_until("the kept port still answers", || {
        http_get(&format!("127.0.0.1:{p1}"), "/index.html").is_some_and(|b| b.contains("kept"))
    });
    // Names still resolve on the user-defined network (its DNS server is back).
    let o = d.docker(&["exec", "cli", "nslookup", "srv"]);
    assert!(o.ok().contains("Name:\tsrv"), "{o:?}");
    // The running container's address is not handed out again.
    d.docker(&["run", "-d", "--name", "new", "busybox", "sleep", "300"])
        .ok();
    assert_ne!(
        inspect(&d, "new", "{{.NetworkSettings.IPAddress}}"),
        keeps_ip
    );
    d.docker(&["rm", "-f", "keeps", "dies", "new", "srv", "cli"])
        .ok();
    // No veth of the test's bridge is left once its containers are gone.
    // (The kernel removes a namespace's veths shortly after its last process.)
    let brif = format!("/sys/class/net/{}/brif", d.bridge);
    wait_until("the bridge has no ports left", || {
        std::fs::read_dir(&brif).map(|r| r.count()).unwrap_or(0) == 0
    });
}

/// Answers every A query on `sock` with 10.1.2.3 (a stand-in for the host's resolver).
fn fake_resolver(sock: UdpSocket) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            let mut r = q.to_vec();
            r[2] = 0x81; // QR, RD
            r[3] = 0x80; // RA
            r[7] = u8::from(u16::from_be_bytes([q[n - 4], q[n - 3]]) == 1); // ANCOUNT
            r[8..12].fill(0);
            r.truncate(n);
            if r[7] == 1 {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
}

#[test]
fn other_names_are_forwarded_to_the_upstream_resolver() {
    // The upstream is on the host's loopback, reachable only from the host's
    // namespace: the embedded server forwards from there, as Docker's does.
    // Its own loopback address (all of 127/8 is the host's loopback), so that a
    // resolver the host runs on 127.0.0.1:53, or another test's, is never in the way.
    let pid = std::process::id();
    let upstream = format!("127.53.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
    let sock = UdpSocket::bind(format!("{upstream}:53"))
        .unwrap_or_else(|e| panic!("binding the stand-in resolver on {upstream}:53: {e}"));
    fake_resolver(sock);
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["network", "create", "fwd"]).ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fwd",
        "--dns",
        &upstream,
        "busybox",
        "nslookup",
        "-type=a",
        "outside.test",
    ]);
    let out = o.ok();
    assert!(out.contains("Address: 10.1.2.3"), "{out}");
    assert!(out.contains("Server:\t\t127.0.0.11"), "{out}");
}

#[test]
fn fifty_containers_in_parallel_get_distinct_addresses_and_resolve_each_other() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["network", "create", "--subnet", "10.251.60.0/24", "many"])
        .ok();
    let names: Vec<String> = (0..50).map(|i| format!("n{i:02}")).collect();
    std::thread::scope(|s| {
        for n in &names {
            let d = &d;
            s.spawn(move || {
                d.docker(&[
                    "run",
                    "-d",
                    "--name",
                    n,
                    "--network",
                    "many",
                    "busybox",
                    "sleep",
                    "300",
                ])
                .ok();
            });
        }
    });
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.IPv4Address}} {{end}}",
        "many",
    ]);
    let mut ips: Vec<&str> = o.ok().split_whitespace().collect();
    assert_eq!(ips.len(), 50);
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50, "addresses must be distinct");
    // Each resolves the others: the first asks for all, the last for the first.
    let script: String = names
        .iter()
        .map(|n| format!("nslookup {n} >/dev/null || echo missing {n}; "))
        .collect();
    let o = d.docker(&["exec", "n00", "sh", "-c", &script]);
    assert_eq!(o.ok(), "", "{o:?}");
    let o = d.docker(&["exec", "n49", "ping", "-c1", "-W2", "n00"]);
    assert!(o.ok().contains("1 packets received"));
    let ids: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut args = vec!["rm", "-f"];
    args.extend(ids);
    d.docker(&args).ok();
}

#[test]
fn stats_count_the_container_network_traffic() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "talk", "busybox", "sleep", "300"])
        .ok();
    let gw = inspect(&d, "talk", "{{.NetworkSettings.Gateway}}");
    d.docker(&[
        "exec", "talk", "ping", "-c3", "-i", "0.2", "-s", "1000", &gw,
    ])
    .ok();
    let o = d.docker(&["stats", "--no-stream", "--format", "{{.NetIO}}", "talk"]);
    let io = o.ok().trim().to_string();
    let (rx, tx) = io.split_once(" / ").unwrap();
    // Three 1 kB pings each way, at least.
    for v in [rx, tx] {
        assert!(
            v.ends_with("kB") && v.trim_end_matches("kB").parse::<f64>().unwrap() >= 3.0,
            "{io}"
        );
    }
    d.docker(&["rm", "-f", "talk"]).ok();
}

#[test]
fn internal_networks_named_bridges_and_daemon_bridge_settings() {
    let d = Daemon::start_with(&["--bip", "10.251.77.1/24"]);
    d.load_busybox();
    // --bip sets the default bridge's address and subnet.
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
        "bridge",
    ]);
    assert_eq!(o.ok().trim(), "10.251.77.0/24 10.251.77.1");
    let o = d.docker(&[
        "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
    ]);
    assert!(o.ok().contains("inet 10.251.77.2/24"), "{o:?}");
    // An internal network has no way out: no default route, and the default
    // bridge's gateway is out of reach.
    let name = format!("bi{}", &d.bridge[2..]);
    d.docker(&[
        "network",
        "create",
        "--internal",
        "-o",
        &format!("com.docker.network.bridge.name={name}"),
        "inner",
    ])
    .ok();
    assert!(d.bridges().contains(&name), "{:?}", d.bridges());
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "sh",
        "-c",
        "ip route; ping -c1 -W1 10.251.77.1 && echo escaped",
    ]);
    let out = o.stdout.clone();
    assert!(!out.contains("default"), "{out}");
    assert!(!out.contains("escaped"), "{out}");
    let o = d.docker(&["network", "inspect", "-f", "{{.Internal}}", "inner"]);
    assert_eq!(o.ok().trim(), "true");
    d.docker(&["network", "rm", "inner"]).ok();
    assert!(berth_net::netlink::Netlink::new()
        .unwrap()
        .link_index(&name)
        .unwrap()
        .is_none());
}

#[test]
fn without_a_default_bridge_containers_say_so() {
    let d = Daemon::start_with(&["--bridge", "none"]);
    d.load_busybox();
    let o = d.docker(&["network", "ls", "--format", "{{.Name}}"]);
    let mut names: Vec<&str> = o.ok().lines().collect();
    names.sort();
    assert_eq!(names, ["host", "none"]);
    let o = d.docker(&["run", "--rm", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("network bridge not found"), "{o:?}");
    d.docker(&["run", "--rm", "--network", "none", "busybox", "true"])
        .ok();
}

/// A connection that ended on the host port moments ago (TIME_WAIT) does not keep
/// a container from publishing that port, as with Docker's proxy.
#[test]
fn a_port_in_time_wait_can_be_published() {
    let d = Daemon::start();
    d.load_busybox();
    let port = free_port();
    {
        // The side bound to the port closes first: its socket stays in TIME_WAIT.
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = l.accept().unwrap();
        drop(server);
        let mut buf = [0u8; 1];
        let _ = (&client).read(&mut buf);
        drop(client);
    }
    let tw = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X} ");
    assert!(
        tw.lines()
            .any(|l| l.contains(&local) && l.split_whitespace().nth(3) == Some("06")),
        "no TIME_WAIT on port {port}:\n{tw}"
    );
    d.docker(&[
        "run",
        "-d",
        "--name",
        "tw",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("after time-wait"),
    ])
    .ok();
    wait_until("the published port answers", || {
        http_get(&format!("127.0.0.1:{port}"), "/index.html")
            .is_some_and(|b| b.contains("after time-wait"))
    });
    d.docker(&["rm", "-f", "tw"]).ok();
}

/// `--link target:alias` on a user-defined network, as Docker takes it: an alias
/// the linking container alone resolves (no legacy variables).
#[test]
fn links_on_a_user_defined_network_are_aliases() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["network", "create", "lnk"]).ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "lnk",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let ip = inspect(&d, "target", "{{.NetworkSettings.Networks.lnk.IPAddress}}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "lnk",
        "--link",
        "target:db",
        "busybox",
        "sh",
        "-c",
        "nslookup -type=a db; env | grep -c DB_ || true",
    ]);
    let out = o.ok();
    assert!(out.contains(&format!("Address: {ip}")), "{out}");
    assert!(out.trim_end().ends_with('0'), "no link variables: {out}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "lnk",
        "busybox",
        "nslookup",
        "-type=a",
        "db",
    ]);
    assert!(!o.stdout.contains(&ip), "{o:?}");
    d.docker(&["rm", "-f", "target"]).ok();
    d.docker(&["network", "rm", "lnk"]).ok();
}

/// A bridge that went missing under berthd (another daemon sharing it removed
/// it) is made again at the next start that needs it.
#[test]
fn a_missing_bridge_is_made_again() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "--rm", "busybox", "true"]).ok();
    berth_net::netlink::Netlink::new()
        .unwrap()
        .delete_link(&d.bridge)
        .unwrap();
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip route | grep -c default",
    ]);
    assert_eq!(o.ok().trim(), "1");
    assert!(berth_net::netlink::Netlink::new()
        .unwrap()
        .link_index(&d.bridge)
        .unwrap()
        .is_some());
}

/// berth's ps shows published ports as the docker CLI does, and an exited
/// container none.
#[test]
fn ps_shows_published_ports_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "pub",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "--expose",
        "81",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let docker = d
        .docker(&["ps", "--format", "{{.Ports}}"])
        .ok()
        .trim()
        .to_string();
    let berth = d
        .berth(&["ps", "--format", "{{.Ports}}"])
        .ok()
        .trim()
        .to_string();
    assert!(
        docker.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{docker}"
    );
    assert!(
        berth.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{berth}"
    );
    assert!(berth.contains("81/tcp"), "{berth}");
    d.docker(&["stop", "-t", "0", "pub"]).ok();
    let o = d.docker(&["ps", "-a", "--format", "{{.Ports}}"]);
    assert_eq!(
        o.ok().trim(),
        "",
        "an exited container shows no port, published or exposed, as in Docker"
    );
    d.docker(&["rm", "pub"]).ok();
}

/// The bridge driver's options: `mtu` on the bridge and every container interface,
/// `enable_icc=false` keeps containers of the network from reaching each other
/// (the host stays reachable), `host_binding_ipv4` is where ports are published when
/// a binding names no address; bad values are refused with dockerd's words.
#[test]
fn bridge_options_mtu_icc_and_host_binding() {
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("bo{}", &d.bridge[2..]);
    d.docker(&[
        "network",
        "create",
        "--subnet",
        "10.252.31.0/24",
        "-o",
        &format!("com.docker.network.bridge.name={name}"),
        "-o",
        "com.docker.network.driver.mtu=1400",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "quiet",
    ])
    .ok();
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).unwrap();
    assert_eq!(mtu.trim(), "1400");
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "quiet",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("isolated-web"),
    ])
    .ok();
    let web_ip = inspect(
        &d,
        "web",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    // The published port is on 127.0.0.1 only, as the network says.
    let o = d.docker(&["port", "web", "80"]);
    assert_eq!(o.ok().trim(), format!("127.0.0.1:{port}"));
    wait_until("httpd answers on 127.0.0.1", || {
        http_get(&format!("127.0.0.1:{port}"), "/index.html")
            .is_some_and(|b| b.contains("isolated-web"))
    });
    // A neighbour: its interface has the MTU, the gateway (the host) answers, the
    // other container does not.
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "quiet",
        "busybox",
        "sh",
        "-c",
        &format!(
            "cat /sys/class/net/eth0/mtu; ping -c1 -W2 10.252.31.1 >/dev/null && echo host-ok; \
             printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {web_ip} 80 | grep isolated-web || echo blocked"
        ),
    ]);
    let out = o.ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1400", "host-ok", "blocked"],
        "{out}"
    );
    // On a network that allows it (the default), the same request reaches web
    // through a second interface: the block was the option's, not the setup's.
    d.docker(&["network", "create", "--subnet", "10.252.32.0/24", "open"])
        .ok();
    d.docker(&["network", "connect", "open", "web"]).ok();
    let web_open = inspect(&d, "web", "{{.NetworkSettings.Networks.open.IPAddress}}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "open",
        "busybox",
        "sh",
        "-c",
        &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {web_open} 80 | tail -1"),
    ]);
    assert_eq!(o.ok().trim(), "isolated-web");
    for (opt, want) in [
        (
            "com.docker.network.driver.mtu=big",
            "failed to parse com.docker.network.driver.mtu value: big",
        ),
        ("com.docker.network.driver.mtu=20", "invalid MTU number: 20"),
        (
            "com.docker.network.bridge.enable_icc=maybe",
            "failed to parse com.docker.network.bridge.enable_icc value: maybe",
        ),
        (
            "com.docker.network.bridge.host_binding_ipv4=nowhere",
            "failed to parse com.docker.network.bridge.host_binding_ipv4 value: nowhere",
        ),
    ] {
        let o = d.docker(&["network", "create", "-o", opt, "bad"]);
        assert_ne!(o.code, 0, "{opt}");
        assert!(o.stderr.contains(want), "{opt}: {o:?}");
    }
    let o = d.docker(&["network", "ls", "-q", "--filter", "name=^bad$"]);
    assert_eq!(o.ok().trim(), "", "a refused network is not left behind");
    d.docker(&["rm", "-f", "web"]).ok();
}

/// As Docker with its userland proxy: a port published on every address is on
/// IPv6's too ([::]), and a container with only IPv4 is reached through its shim,
/// for TCP and UDP, also on an IPv6 address named in `-p`; `docker port`, `ps` and
/// `berth ps` show both. With `--userland-proxy=false` there is no such route:
/// IPv4 only, and an IPv6 host address is refused with the reason.
#[test]
fn ports_on_ipv6_reach_ipv4_containers_through_the_shim() {
    let d = Daemon::start();
    d.load_busybox();
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("over-six"),
    ])
    .ok();
    assert_eq!(
        d.docker(&["port", "web", "80"]).ok(),
        format!("0.0.0.0:{port}\n[::]:{port}\n")
    );
    let want = format!("0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp");
    assert_eq!(
        d.docker(&["ps", "--format", "{{.Ports}}"]).ok().trim(),
        want
    );
    assert!(d.berth(&["ps"]).ok().contains(&want));
    wait_until("httpd answers on [::1]", || {
        http_get(&format!("[::1]:{port}"), "/index.html").is_some_and(|b| b.contains("over-six"))
    });
    assert!(http_get(&format!("127.0.0.1:{port}"), "/index.html")
        .is_some_and(|b| b.contains("over-six")));
    // Many connections at once through the proxy.
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|_| s.spawn(|| http_get(&format!("[::1]:{port}"), "/index.html")))
            .collect();
        for h in hs {
            assert!(h.join().unwrap().is_some_and(|b| b.contains("over-six")));
        }
    });
    // UDP, on a named IPv6 address.
    load_udp_echo(&d);
    let uport = UdpSocket::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        &format!("[::1]:{uport}:9000/udp"),
        "udpecho:1",
    ])
    .ok();
    assert_eq!(
        d.docker(&["port", "echo"]).ok().trim(),
        format!("9000/udp -> [::1]:{uport}")
    );
    wait_for_echo("[::1]:0", &format!("[::1]:{uport}"), b"ping-six");
    // Gone with the container.
    d.docker(&["rm", "-f", "web", "echo"]).ok();
    assert!(http_get(&format!("[::1]:{port}"), "/").is_none());
    // A container with IPv6 of its own: NAT to it from the host's IPv6 addresses,
    // the shim for loopback.
    d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:b:e:7::/64",
        "dual",
    ])
    .ok();
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "dual",
        "--network",
        "dual",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("dual-stack"),
    ])
    .ok();
    let ip6 = inspect(
        &d,
        "dual",
        "{{.NetworkSettings.Networks.dual.GlobalIPv6Address}}",
    );
    let gw6 = inspect(&d, "dual", "{{.NetworkSettings.Networks.dual.IPv6Gateway}}");
    let t = nft_table(&d);
    assert!(
        t.contains(&format!(
            "ip6 daddr != ::1 tcp dport {port} dnat ip6 to [{ip6}]:80"
        )),
        "{t}"
    );
    for addr in [format!("[::1]:{port}"), format!("[{gw6}]:{port}")] {
        wait_until(&format!("httpd answers on {addr}"), || {
            http_get(&addr, "/index.html").is_some_and(|b| b.contains("dual-stack"))
        });
    }
    d.docker(&["rm", "-f", "dual"]).ok();

    let d = Daemon::start_with(&["--userland-proxy=false"]);
    d.load_busybox();
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(
        d.docker(&["port", "web", "80"]).ok(),
        format!("0.0.0.0:{port}\n")
    );
    let o = d.docker(&[
        "run",
        "-d",
        "-p",
        &format!("[::1]:{}:80", free_port()),
        "busybox",
        "sleep",
        "60",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("has no IPv6 address and the userland proxy is disabled"),
        "{o:?}"
    );
    d.docker(&["rm", "-f", "web"]).ok();
}

/// dockerd's `fixed-cidr` (containers' addresses from a part of the default
/// bridge's subnet) and `ipv6` with `fixed-cidr-v6` (IPv6 on the default bridge).
#[test]
fn fixed_cidr_and_ipv6_on_the_default_bridge() {
    let d = Daemon::start_with(&[
        "--bip",
        "10.251.79.1/24",
        "--fixed-cidr",
        "10.251.79.128/25",
        "--ipv6",
        "--fixed-cidr-v6",
        "fd00:b:e:9::/64",
    ]);
    d.load_busybox();
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}},{{.IPRange}} {{end}}",
        "bridge",
    ]);
    assert_eq!(
        o.ok().trim(),
        "true 10.251.79.0/24,10.251.79.128/25 fd00:b:e:9::/64,"
    );
    let out = d.run_rm(&[
        "busybox",
        "sh",
        "-c",
        "ip -o addr show eth0 | awk '{print $4}'; ping6 -c1 -W2 fd00:b:e:9::1 >/dev/null && echo v6-gateway",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"10.251.79.128/24"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fd00:b:e:9::") && l.ends_with("/64")),
        "{out}"
    );
    assert!(lines.contains(&"v6-gateway"), "{out}");
}

/// `--aux-address`: named addresses kept out of allocation, shown in the IPAM
/// configuration; asking for one is refused, as is one outside the subnet.
#[test]
fn aux_addresses_are_never_handed_out() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "network",
        "create",
        "--subnet",
        "10.252.70.0/29",
        "--aux-address",
        "router=10.252.70.2",
        "--aux-address",
        "printer=10.252.70.3",
        "auxnet",
    ])
    .ok();
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{json .AuxiliaryAddresses}}{{end}}",
        "auxnet",
    ]);
    assert_eq!(
        o.ok().trim(),
        r#"{"printer":"10.252.70.3","router":"10.252.70.2"}"#
    );
    let out = d.run_rm(&[
        "--network",
        "auxnet",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | awk '{print $4}'",
    ]);
    assert_eq!(out.trim(), "10.252.70.4/29");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "auxnet",
        "--ip",
        "10.252.70.2",
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("Address already in use"), "{o:?}");
    // The docker CLI checks this itself; the daemon too, for other clients.
    let (code, _, body) = d.api(
        "POST",
        "/networks/create",
        Some(r#"{"Name": "auxbad", "IPAM": {"Config": [{"Subnet": "10.252.71.0/24", "AuxiliaryAddresses": {"far": "10.9.9.9"}}]}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("must belong to the master pool"), "{body}");
}

/// A veth pair of the test's own on the host, up: the parent of macvlan networks
/// (never the host's own interfaces). Removed when dropped.
struct TestParent(String);

impl TestParent {
    fn new(tag: &str) -> TestParent {
        let name = format!("bp{tag}{}", std::process::id() % 100000);
        let peer = format!("{name}p");
        let ip = |args: &[&str]| {
            let o = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &name, "up"]);
        ip(&["link", "set", &peer, "up"]);
        TestParent(name)
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

/// macvlan networks on a parent made by the test: containers get their own MAC
/// on the parent, reach each other by name in bridge mode and not in private
/// mode; a missing parent, a bad mode and ipvlan (this kernel has none) are
/// refused in Docker's words.
#[test]
fn macvlan_networks_on_a_test_parent() {
    let d = Daemon::start();
    d.load_busybox();
    let parent = TestParent::new("m");
    d.docker(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.252.80.0/24",
        "-o",
        &format!("parent={}", parent.0),
        "macnet",
    ])
    .ok();
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{.Driver}} {{.Options.parent}}",
        "macnet",
    ]);
    assert_eq!(o.ok(), format!("macvlan {}\n", parent.0));
    d.docker(&[
        "run",
        "-d",
        "--name",
        "mv1",
        "--network",
        "macnet",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // The kernel's view, from the host's iproute2 inside the container's namespace.
    let mode = |c: &str| {
        let pid = inspect(&d, c, "{{.State.Pid}}");
        let o = std::process::Command::new("nsenter")
            .args(["-t", &pid, "-n", "ip", "-d", "link", "show", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(text.contains("@if"), "{text}");
        text.split("macvlan mode ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(mode("mv1"), "bridge");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "macnet",
        "busybox",
        "sh",
        "-c",
        "ping -c1 -W2 mv1 >/dev/null && echo reached",
    ]);
    assert_eq!(o.ok(), "reached\n");
    // Private mode: siblings cannot talk.
    d.docker(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.252.81.0/24",
        "-o",
        &format!("parent={}", parent.0),
        "-o",
        "macvlan_mode=private",
        "macpriv",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "mp1",
        "--network",
        "macpriv",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let ip1 = inspect(&d, "mp1", "{{.NetworkSettings.Networks.macpriv.IPAddress}}");
    assert_eq!(mode("mp1"), "private");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "macpriv",
        "busybox",
        "sh",
        "-c",
        &format!("ping -c1 -W1 {ip1} >/dev/null && echo reached || echo isolated"),
    ]);
    assert_eq!(o.ok(), "isolated\n");
    for (args, want) in [
        (
            vec!["-d", "macvlan", "-o", "parent=bpnothere0", "x1"],
            "parent interface was not found on the host: bpnothere0",
        ),
        (
            vec![
                "-d",
                "macvlan",
                "-o",
                &format!("parent={}", parent.0),
                "-o",
                "macvlan_mode=loud",
                "x2",
            ][..]
                .to_vec(),
            "requested macvlan mode 'loud' is not valid",
        ),
        (
            vec!["-d", "ipvlan", "-o", &format!("parent={}", parent.0), "x3"][..].to_vec(),
            "failed to create the ipvlan port",
        ),
        (vec!["-d", "overlay", "x4"], "plugin \"overlay\" not found"),
    ] {
        let mut a = vec!["network", "create"];
        a.extend(args.iter().map(|s| &**s));
        let o = d.docker(&a);
        assert_ne!(o.code, 0, "{args:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
    }
    let nets = d
        .docker(&["network", "ls", "--format", "{{.Name}}"])
        .ok()
        .to_string();
    assert!(
        !nets.contains("x1") && !nets.contains("x3"),
        "refused networks are not kept: {nets}"
    );
    d.docker(&["rm", "-f", "mv1", "mp1"]).ok();
    d.docker(&["network", "rm", "macnet", "macpriv"]).ok();
}

/// dockerd's `iptables: false`: berth programs no firewall at all (its table is
/// never made) and published ports are served by the containers' shims, on IPv4
/// too; `ip-masq: false` turns the default bridge's masquerading off.
#[test]
fn without_the_firewall_ports_are_served_by_the_shim() {
    let d = Daemon::start_with(&["--iptables=false", "--ip-masq=false"]);
    d.load_busybox();
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.bridge.enable_ip_masquerade\"}}",
        "bridge",
    ]);
    assert_eq!(o.ok(), "false\n");
    let port = free_port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        &httpd_cmd("no-firewall"),
    ])
    .ok();
    wait_until("httpd through the shim on 127.0.0.1", || {
        http_get(&format!("127.0.0.1:{port}"), "/index.html")
            .is_some_and(|b| b.contains("no-firewall"))
    });
    assert!(http_get(&format!("[::1]:{port}"), "/index.html")
        .is_some_and(|b| b.contains("no-firewall")));
    let t = berth_net::nft::table_for(&d.data_root);
    let o = std::process::Command::new("nft")
        .args(["list", "table", "inet", &t])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "no table of berth's: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    d.docker(&["rm", "-f", "web"]).ok();
}
