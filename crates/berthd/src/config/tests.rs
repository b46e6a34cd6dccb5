//! The configuration's rules: unknown keys, conflicts, hosts, network settings.

use super::*;
use clap::Parser;

fn flags(args: &[&str]) -> Flags {
    Flags::parse_from(std::iter::once("berthd").chain(args.iter().copied()))
}

#[test]
fn unknown_and_unsupported_keys_are_named() {
    let p = Path::new("/x/daemon.json");
    let e = parse_file(p, r#"{"data-rot": "/x"}"#).unwrap_err();
    assert!(
        format!("{e:#}").contains("don't match any configuration option: data-rot"),
        "{e:#}"
    );
    let e = parse_file(p, r#"{"debug": "yes"}"#).unwrap_err();
    assert!(format!("{e:#}").contains("invalid type"), "{e:#}");
}

#[test]
fn network_settings_are_checked() {
    let none = |args: &[&str]| Config::merge(flags(args), FileConfig::default());
    let c = none(&[
        "--bip",
        "172.30.0.1/16",
        "--default-address-pool",
        "base=10.10.0.0/16,size=24",
    ])
    .unwrap();
    assert_eq!(c.net.bridge.as_deref(), Some("berth0"));
    let (gw, subnet) = c.net.bip.unwrap();
    assert_eq!(
        (gw.to_string(), subnet.to_string()),
        ("172.30.0.1".into(), "172.30.0.0/16".into())
    );
    assert_eq!(c.net.pools.len(), 1);
    assert!(none(&["--bridge", "none"]).unwrap().net.bridge.is_none());
    for (args, want) in [
        (&["--bip", "172.30.0.0/16"][..], "not the network's"),
        (&["--bip", "nonsense"][..], "invalid bip"),
        (
            &["--bridge", "none", "--bip", "10.1.0.1/24"][..],
            "--bridge none",
        ),
        (
            &["--default-address-pool", "base=10.0.0.0/8"][..],
            "invalid address pool",
        ),
        (&["--dns", "resolver.example"][..], "invalid dns"),
    ] {
        let e = none(args).unwrap_err();
        assert!(format!("{e:#}").contains(want), "{args:?}: {e:#}");
    }
    let file = parse_file(
        Path::new("f"),
        r#"{"bridge": "br9", "default-address-pools": [{"base": "10.20.0.0/16", "size": 24}], "dns": ["10.0.0.53"]}"#,
    )
    .unwrap();
    let c = Config::merge(flags(&[]), file).unwrap();
    assert_eq!(c.net.bridge.as_deref(), Some("br9"));
    assert_eq!(c.net.pools[0].1, 24);
    assert_eq!(c.net.dns, ["10.0.0.53"]);
}

#[test]
fn flag_and_file_conflict() {
    let file = parse_file(Path::new("f"), r#"{"data-root": "/b"}"#).unwrap();
    let e = Config::merge(flags(&["--data-root", "/a"]), file).unwrap_err();
    assert!(
        e.to_string()
            .contains("data-root: (from flag: \"/a\", from file: \"/b\")"),
        "{e}"
    );
}

#[test]
fn hosts_are_checked() {
    let e = Config::merge(flags(&["-H", "tcp://0.0.0.0:2375"]), FileConfig::default()).unwrap_err();
    assert!(e.to_string().contains("without --tlsverify"), "{e}");
    // TLS without client certificates is not enough off loopback either.
    let e = Config::merge(
        flags(&["-H", "tcp://0.0.0.0:2376", "--tls"]),
        FileConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("without --tlsverify"), "{e}");
    let c = Config::merge(
        flags(&[
            "-H",
            "tcp://0.0.0.0:2376",
            "--tlsverify",
            "--tlscacert",
            "/c/ca.pem",
            "--tlscert",
            "/c/cert.pem",
            "--tlskey",
            "/c/key.pem",
        ]),
        FileConfig::default(),
    )
    .unwrap();
    assert_eq!(
        c.tls,
        Some(Tls {
            cert: "/c/cert.pem".into(),
            key: "/c/key.pem".into(),
            client_ca: Some("/c/ca.pem".into()),
        })
    );
    // Loopback without TLS: allowed (with a warning).
    let c = Config::merge(
        flags(&["-H", "tcp://127.0.0.1:2375"]),
        FileConfig::default(),
    )
    .unwrap();
    assert_eq!(c.tls, None);
    // A flag and the file both: dockerd's conflict.
    let e = Config::merge(
        flags(&["--tlsverify"]),
        FileConfig {
            tlsverify: Some(true),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("tlsverify"), "{e}");
    let c = Config::merge(
        flags(&["-H", "unix:///tmp/b.sock", "--exec-root", "/run/b1"]),
        FileConfig::default(),
    )
    .unwrap();
    assert_eq!(c.hosts, ["unix:///tmp/b.sock"]);
    assert_eq!(c.pidfile, PathBuf::from("/run/b1/berthd.pid"));
    let long = "/run/a-very-long-exec-root-path-here-xx";
    assert!(Config::merge(flags(&["--exec-root", long]), FileConfig::default()).is_err());
}

#[test]
fn builder_gc_takes_docker_desktops_default_and_policies() {
    let p = Path::new("/x/daemon.json");
    let load = |text: &str| Config::merge(flags(&[]), parse_file(p, text)?);
    use crate::daemon::build::GcRule;
    // Docker Desktop's default daemon.json.
    let c = load(r#"{"builder": {"gc": {"defaultKeepStorage": "20GB", "enabled": true}}, "experimental": false}"#).unwrap();
    assert_eq!(
        c.builder_gc,
        [GcRule {
            all: false,
            keep_storage: 20 << 30,
            until_secs: None
        }]
    );
    let c = load(
        r#"{"builder": {"GC": {"Enabled": true, "DefaultKeepStorage": "1GB", "Policy": [
        {"KeepStorage": "512MB", "Filter": ["unused-for=2h"]}, {"All": true}]}}}"#,
    )
    .unwrap();
    assert_eq!(
        c.builder_gc,
        [
            GcRule {
                all: false,
                keep_storage: 512 << 20,
                until_secs: Some(7200)
            },
            GcRule {
                all: true,
                keep_storage: 1 << 30,
                until_secs: None
            },
        ]
    );
    assert!(
        load(r#"{"builder": {"gc": {"enabled": false, "defaultKeepStorage": "1GB"}}}"#)
            .unwrap()
            .builder_gc
            .is_empty()
    );
    for (text, words) in [
        (
            r#"{"builder": {"gc": {"defaultKeepStorage": "lots"}}}"#,
            "invalid size \"lots\"",
        ),
        (
            r#"{"builder": {"gc": {"policy": [{"filter": ["type=regular"]}]}}}"#,
            "not \"type\"",
        ),
        (
            r#"{"builder": {"entitlements": {"security-insecure": true}}}"#,
            "security-insecure",
        ),
        (
            r#"{"builder": {"history": {"maxAge": "48h"}}}"#,
            "builder.history",
        ),
    ] {
        let e = format!("{:#}", load(text).unwrap_err());
        assert!(e.contains(words), "{text}: {e}");
    }
}

#[test]
fn runtimes_are_checked_as_dockerd_checks_them() {
    let p = Path::new("/x/daemon.json");
    let load = |text: &str| Config::merge(flags(&[]), parse_file(p, text)?);
    let c = load(r#"{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": ["--debug"]}, "kata": {"runtimeType": "io.containerd.kata.v2"}}}"#).unwrap();
    assert_eq!(
        c.container_defaults
            .runtimes
            .get("nvidia")
            .map(String::as_str),
        Some("nvidia-container-runtime --debug")
    );
    assert!(c.container_defaults.runtimes.contains_key("kata"));
    for (text, words) in [
        (
            r#"{"runtimes": {"runc": {"path": "runc"}}}"#,
            "runtime name 'runc' is reserved",
        ),
        (
            r#"{"runtimes": {"x": {}}}"#,
            "runtime x: either a runtimeType or a path must be configured",
        ),
        (
            r#"{"runtimes": {"x": {"path": "a", "runtimeType": "b"}}}"#,
            "cannot configure both path and runtimeType",
        ),
        (
            r#"{"runtimes": {"x": {"path": "a", "options": {"k": 1}}}}"#,
            "options cannot be used with a path runtime",
        ),
    ] {
        let e = format!("{:#}", load(text).unwrap_err());
        assert!(e.contains(words), "{text}: {e}");
    }
}
