//! berthd itself: API negotiation and errors, configuration, several daemons side by
//! side, and containers that outlive a daemon restart.

use berth_tests::{bin, run, Daemon};
use std::path::Path;
use std::process::Command;

#[test]
fn ping_version_negotiation_and_errors() {
    let d = Daemon::start();
    let (status, head, body) = d.api("GET", "/_ping", None);
    assert_eq!((status, body.as_str()), (200, "OK"));
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("api-version: 1.51") && head.contains("ostype: linux"),
        "{head}"
    );
    let (status, head, _) = d.api("HEAD", "/_ping", None);
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("api-version"));
    let (status, _, body) = d.api("GET", "/v1.99/info", None);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"message":"client version 1.99 is too new. Maximum supported API version is 1.51"}"#
    );
    let (status, _, body) = d.api("GET", "/v1.12/info", None);
    assert_eq!(status, 400);
    assert!(
        body.contains("client version 1.12 is too old. Minimum supported API version is 1.24"),
        "{body}"
    );
    let (status, _, body) = d.api("GET", "/v1.24/containers/nosuch/json", None);
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"message":"No such container: nosuch"}"#)
    );
    let (status, _, body) = d.api("POST", "/containers/create", Some("{not json"));
    assert_eq!(status, 400);
    assert!(body.contains("invalid JSON in request body"), "{body}");
    let (status, _, body) = d.api("POST", "/containers/create", Some(r#"{"Image":"nosuch"}"#));
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"message":"No such image: nosuch"}"#)
    );
    let (status, _, _) = d.api("GET", "/nonsense", None);
    assert_eq!(status, 404);
    let (status, _, body) = d.api("GET", "/info", None);
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["DockerRootDir"], d.data_root.display().to_string());
    assert!(info["NCPU"].as_i64().unwrap() >= 1 && info["MemTotal"].as_i64().unwrap() > 0);
    assert!(["1", "2"].contains(&info["CgroupVersion"].as_str().unwrap()));
    let (status, _, body) = d.api("GET", "/version", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"MinAPIVersion\":\"1.24\""), "{body}");
    // The real docker CLI negotiates and reports the server.
    let o = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(o.ok().trim(), "1.51");
    let o = d.docker(&[
        "info",
        "--format",
        "{{.Containers}} {{.Images}} {{.Driver}}",
    ]);
    assert_eq!(o.ok().trim(), "0 0 overlay2");
}

fn berthd(args: &[&str]) -> berth_tests::Out {
    let mut c = Command::new(bin("berthd"));
    c.args(args);
    run(c, None)
}

#[test]
fn bad_configuration_stops_the_start() {
    berth_tests::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"data-rot": "/x"}"#).unwrap();
    let o = berthd(&["--config-file", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("the following directives don't match any configuration option: data-rot"),
        "{o:?}"
    );
    // --validate: the same checks, nothing started.
    let o = berthd(&["--validate", "--config-file", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{o:?}");
    std::fs::write(
        &cfg,
        r#"{"debug": true, "tlsverify": true, "hosts": ["tcp://127.0.0.1:1"]}"#,
    )
    .unwrap();
    let o = berthd(&["--validate", "--config-file", cfg.to_str().unwrap()]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "configuration OK\n"),
        "{o:?}"
    );
    // Refused while reading the configuration, before anything is touched.
    std::fs::write(&cfg, r#"{"runtimes": {"runc": {"path": "/usr/bin/runc"}}}"#).unwrap();
    let o = berthd(&["--config-file", cfg.to_str().unwrap()]);
    assert!(
        o.stderr.contains("runtime name 'runc' is reserved"),
        "{o:?}"
    );
    std::fs::write(&cfg, r#"{"registry-mirrors": ["mirror.example"]}"#).unwrap();
    let o = berthd(&["--config-file", cfg.to_str().unwrap()]);
    assert!(o.stderr.contains("invalid mirror"), "{o:?}");
    std::fs::write(&cfg, r#"{"data-root": "/b"}"#).unwrap();
    let o = berthd(&["--config-file", cfg.to_str().unwrap(), "--data-root", "/a"]);
    assert!(
        o.stderr
            .contains("specified both as a flag and in the configuration file: data-root"),
        "{o:?}"
    );
    let o = berthd(&[
        "--config-file",
        tmp.path().join("missing.json").to_str().unwrap(),
    ]);
    assert!(o.stderr.contains("missing.json"), "{o:?}");
    std::fs::write(&cfg, "{}").unwrap();
    // Off loopback without --tlsverify: refused (remote.rs has the rest).
    let o = berthd(&[
        "--config-file",
        cfg.to_str().unwrap(),
        "-H",
        "tcp://0.0.0.0:2375",
    ]);
    assert!(o.stderr.contains("without --tlsverify"), "{o:?}");
    let o = berthd(&["--bogus"]);
    assert_ne!(o.code, 0);
    // Nothing was created by the refused starts.
    assert!(!std::path::Path::new("/a").exists());
}

#[test]
fn two_daemons_side_by_side() {
    let a = Daemon::start();
    let b = Daemon::start();
    a.load_busybox();
    b.load_busybox();
    a.docker(&["run", "-d", "--name", "same", "busybox", "sleep", "100"])
        .ok();
    b.docker(&["run", "-d", "--name", "same", "busybox", "sleep", "100"])
        .ok();
    assert_eq!(a.docker(&["ps", "-q"]).ok().lines().count(), 1);
    assert_eq!(b.docker(&["ps", "-q"]).ok().lines().count(), 1);
    // A second daemon on a socket in use is refused.
    let o = berthd(&[
        "-H",
        &a.host(),
        "--data-root",
        b.root.path().join("x").to_str().unwrap(),
        "--exec-root",
        "/run/bt-x",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("in use"), "{o:?}");
    assert!(
        !std::path::Path::new("/run/bt-x").exists(),
        "a refused start leaves nothing"
    );
    a.docker(&["rm", "-f", "same"]).ok();
    b.docker(&["rm", "-f", "same"]).ok();
}

#[test]
fn sigterm_stops_containers_and_cleans_up() {
    let mut d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "long",
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    assert_eq!(d.stop(), 0);
    assert!(!d.socket.exists(), "the socket is removed at shutdown");
    assert!(
        !d.exec_root.join("berthd.pid").exists(),
        "the pid file is removed"
    );
    d.spawn();
    let o = d.docker(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(o.ok(), "long exited\n");
    d.docker(&["rm", "long"]).ok();
}

#[test]
fn containers_outlive_a_daemon_crash() {
    let mut d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 1000",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "quick",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 4",
    ])
    .ok();
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", "survivor"])
        .ok()
        .trim()
        .to_string();
    let quick: i32 = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", "quick"])
        .ok()
        .trim()
        .parse()
        .unwrap();
    d.kill9();
    // While berthd is gone, the container keeps running and "quick" exits.
    berth_tests::wait_pid_exit(quick);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    d.spawn();
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Pid}}",
        "survivor",
    ]);
    assert_eq!(o.ok().trim(), format!("running {pid}"));
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "quick",
    ]);
    assert_eq!(
        o.ok().trim(),
        "exited 4",
        "the exit recorded by the shim while berthd was down"
    );
    assert_eq!(d.docker(&["logs", "survivor"]).ok(), "before\n");
    d.docker(&["stop", "-t", "0", "survivor"]).ok();
    assert_eq!(d.docker(&["wait", "survivor"]).ok().trim(), "137");
    d.docker(&["rm", "survivor", "quick"]).ok();
}

#[test]
fn socket_permissions_and_socket_activation() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // dockerd's -G: the "docker" group's when it exists (Debian's docker.io makes
    // it), else root's; a group asked for must exist.
    let docker_gid = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("docker:x:"))
        .map_or(0, |r| {
            r.trim_end_matches(':')
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        });
    assert_eq!(std::fs::metadata(&d.socket).unwrap().gid(), docker_gid);
    drop(d);
    let d = Daemon::start_with(&["--group", "daemon"]);
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 1), "root:daemon");
    drop(d);
    let o = berthd(&["--validate", "--group", "no-such-group-here"]);
    assert!(
        o.stderr.contains("group no-such-group-here not found"),
        "{o:?}"
    );

    // fd://: a socket passed as fd 3 with LISTEN_PID/LISTEN_FDS, as systemd does.
    // python3 binds it and execs berthd in the same process (so LISTEN_PID holds).
    let tmp = tempfile::Builder::new()
        .prefix("bt-act-")
        .tempdir_in("/tmp")
        .unwrap();
    let sock = tmp.path().join("act.sock");
    let cfg = tmp.path().join("daemon.json");
    std::fs::write(&cfg, "{}").unwrap();
    let exec_root = format!("/run/bt-act-{}", std::process::id());
    let script = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid()); os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], [sys.argv[2]] + sys.argv[3:])
"#;
    let notify = tmp.path().join("notify");
    let listener = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(&sock)
        .arg(bin("berthd"))
        .args([
            "-H",
            "fd://",
            "--config-file",
            cfg.to_str().unwrap(),
            "--exec-root",
            &exec_root,
        ])
        .arg("--data-root")
        .arg(tmp.path().join("data"))
        .env("NOTIFY_SOCKET", &notify)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 32];
    let n = listener
        .recv(&mut buf)
        .expect("READY=1 from a socket-activated berthd");
    assert_eq!(&buf[..n], b"READY=1");
    let mut c = Command::new(berth_tests::DOCKER);
    c.args(["version", "--format", "{{.Server.APIVersion}}"])
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("DOCKER_CONFIG", tmp.path().join("dc"));
    assert_eq!(run(c, None).ok().trim(), "1.51");
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&exec_root);
}

/// berthd as a service: scripts/install.sh stages the binaries and systemd's
/// units, `systemd-analyze verify` accepts them, and the staged berthd started
/// as the socket unit starts it (`systemd-socket-activate`, `-H fd://`) answers
/// the docker CLI on the activated socket.
#[test]
fn the_service_units_install_and_socket_activation_serves() {
    berth_tests::require_root();
    let stage = tempfile::tempdir().unwrap();
    let prefix = stage.path().join("usr/local");
    let root = env!("CARGO_MANIFEST_DIR").to_string() + "/../..";
    let mut c = Command::new(format!("{root}/scripts/install.sh"));
    c.env("DESTDIR", stage.path())
        .env("PREFIX", "/usr/local")
        .env("BIN_DIR", bin("berthd").parent().unwrap());
    let out = run(c, None).ok().to_string();
    assert!(out.contains("installed under"), "{out}");
    let units = stage.path().join("etc/systemd/system");
    for f in ["berthd.service", "berthd.socket"] {
        assert!(units.join(f).is_file(), "{f}");
    }
    for b in ["berthd", "berth", "berth-shim"] {
        assert!(prefix.join("bin").join(b).is_file(), "{b}");
    }
    // The unit as installed, pointed at the staged binary for systemd-analyze.
    let unit = std::fs::read_to_string(units.join("berthd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/berthd -H fd://"),
        "{unit}"
    );
    assert!(
        unit.contains("Type=notify") && unit.contains("Delegate=yes"),
        "{unit}"
    );
    let check = stage.path().join("check");
    std::fs::create_dir_all(&check).unwrap();
    std::fs::write(
        check.join("berthd.service"),
        unit.replace(
            "/usr/local/bin/berthd",
            prefix.join("bin/berthd").to_str().unwrap(),
        ),
    )
    .unwrap();
    std::fs::copy(units.join("berthd.socket"), check.join("berthd.socket")).unwrap();
    let mut v = Command::new("systemd-analyze");
    v.arg("verify")
        .arg(check.join("berthd.socket"))
        .arg(check.join("berthd.service"));
    let o = run(v, None);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!o.stderr.contains("berthd."), "{o:?}");
    // Socket activation as systemd does it, on a socket of this test's; what
    // that berthd makes goes with the guard, whatever happens.
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    struct Activated {
        child: std::process::Child,
        exec_root: String,
        bridge: String,
        cgroup_parent: String,
        data_root: std::path::PathBuf,
    }
    impl Drop for Activated {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
            let _ = Command::new("ip")
                .args(["link", "del", &self.bridge])
                .status();
            let _ = berth_net::nft::remove(&berth_net::nft::table_for(&self.data_root));
            for h in berth_tests::cgroup_dirs(&self.cgroup_parent) {
                let _ = std::fs::remove_dir(&h);
            }
            let _ = std::fs::remove_dir_all(&self.exec_root);
        }
    }
    let sock = stage.path().join("berth.sock");
    std::fs::write(stage.path().join("none.json"), "{}").unwrap();
    let (exec_root, bridge, cgroup_parent) = (
        format!("/run/bt-sa-{tag}"),
        format!("bsa{tag}"),
        format!("berth-test-sa-{tag}"),
    );
    let child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(prefix.join("bin/berthd"))
        .args(["-H", "fd://", "--data-root"])
        .arg(stage.path().join("data"))
        .args(["--exec-root", &exec_root, "--bridge", &bridge])
        .args(["--cgroup-parent", &cgroup_parent])
        .args(["--default-address-pool", "base=10.249.0.0/16,size=24"])
        .arg("--config-file")
        .arg(stage.path().join("none.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _activated = Activated {
        child,
        exec_root,
        bridge,
        cgroup_parent,
        data_root: stage.path().join("data"),
    };
    berth_tests::wait_until("the socket is there", || sock.exists());
    let mut c = Command::new(berth_tests::DOCKER);
    c.args(["version", "--format", "{{.Server.Os}}"])
        .env("DOCKER_HOST", format!("unix://{}", sock.display()));
    assert_eq!(run(c, None).ok(), "linux\n");
}

/// SIGHUP reloads what dockerd reloads: `docker info` shows the new debug,
/// live-restore and registry settings, a `daemon reload` event says so; a file
/// that does not parse changes nothing.
#[test]
fn sighup_reloads_the_configuration() {
    let d = Daemon::start();
    let info = || {
        d.docker(&[
            "info",
            "--format",
            "{{.Debug}} {{.LiveRestoreEnabled}} {{json .RegistryConfig.Mirrors}} {{json .RegistryConfig.InsecureRegistryCIDRs}}",
        ])
        .ok()
        .to_string()
    };
    assert_eq!(info(), "false false [] [\"::1/128\",\"127.0.0.0/8\"]\n");
    let cfg = d.root.path().join("daemon.json");
    std::fs::write(
        &cfg,
        r#"{"debug": true, "live-restore": true, "registry-mirrors": ["https://mirror.example"], "insecure-registries": ["10.9.0.0/16"], "labels": ["tier=x"], "experimental": true, "shutdown-timeout": 3, "max-concurrent-downloads": 2, "max-concurrent-uploads": 4, "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1111, "Hard": 2222}}}"#,
    )
    .unwrap();
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &d.pid().to_string()])
            .status()
            .unwrap();
    };
    hup();
    let want =
        "true true [\"https://mirror.example/\"] [\"::1/128\",\"127.0.0.0/8\",\"10.9.0.0/16\"]\n";
    berth_tests::wait_until("the reload shows in info", || info() == want);
    assert_eq!(
        d.docker(&[
            "info",
            "--format",
            "{{json .Labels}} {{.ExperimentalBuild}}"
        ])
        .ok(),
        "[\"tier=x\"] true\n"
    );
    let o = d.docker(&[
        "events",
        "--since",
        "10m",
        "--until",
        &format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 1
        ),
        "--filter",
        "type=daemon",
        "--format",
        "{{.Action}} {{.Actor.Attributes.debug}} {{index .Actor.Attributes \"live-restore\"}} {{index .Actor.Attributes \"shutdown-timeout\"}} {{index .Actor.Attributes \"max-concurrent-downloads\"}} {{index .Actor.Attributes \"max-concurrent-uploads\"}}",
    ]);
    assert_eq!(o.ok(), "reload true true 3 2 4\n");
    // default-ulimits reach the containers started after the reload.
    d.load_busybox();
    assert_eq!(
        d.run_rm(&["busybox", "sh", "-c", "ulimit -n; ulimit -Hn"]),
        "1111\n2222\n"
    );
    // A broken file: an error in the log, the configuration in force kept.
    std::fs::write(&cfg, r#"{"debug": "#).unwrap();
    hup();
    berth_tests::wait_until("the failed reload is logged", || {
        d.log().contains("Error reconfiguring the daemon")
    });
    assert_eq!(info(), want);
    std::fs::write(&cfg, "{}").unwrap();
}

/// dockerd's defaults for containers, as flags (daemon.json's keys are the same
/// settings, checked by --validate): /dev/shm size, ulimits under a container's
/// own, the log driver and its options, the cgroup namespace mode; the daemon's
/// labels and experimental flag in `docker info`.
#[test]
fn daemon_defaults_reach_containers_and_info() {
    let d = Daemon::start_with(&[
        "--default-shm-size",
        "128M",
        "--default-ulimit",
        "nofile=1024:2048",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=5m",
        "--default-cgroupns-mode",
        "host",
        "--label",
        "env=test",
        "--experimental",
    ]);
    d.load_busybox();
    assert_eq!(
        d.docker(&[
            "info",
            "--format",
            "{{json .Labels}} {{.ExperimentalBuild}}"
        ])
        .ok(),
        "[\"env=test\"] true\n"
    );
    let host_ns = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    let out = d.run_rm(&[
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -1 | awk '{print $2}'; ulimit -n; ulimit -Hn; readlink /proc/self/ns/cgroup",
    ]);
    assert_eq!(out, format!("131072\n1024\n2048\n{}\n", host_ns.display()));
    d.docker(&["create", "--name", "made", "busybox"]).ok();
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}} {{.HostConfig.ShmSize}} {{.HostConfig.CgroupnsMode}}",
            "made",
        ])
        .ok(),
        "local {\"max-size\":\"5m\"} 134217728 host\n"
    );
    // A container's own log options go over the daemon's, as dockerd merges them.
    d.docker(&[
        "create",
        "--name",
        "opts",
        "--log-opt",
        "max-file=2",
        "busybox",
    ])
    .ok();
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}}",
            "opts",
        ])
        .ok(),
        "local {\"max-file\":\"2\",\"max-size\":\"5m\"}\n"
    );
    // A container's own settings win.
    let out = d.run_rm(&[
        "--ulimit",
        "nofile=512:512",
        "--shm-size",
        "8m",
        "--cgroupns",
        "private",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; df -k /dev/shm | tail -1 | awk '{print $2}'; readlink /proc/self/ns/cgroup",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["512", "8192"], "{out}");
    assert_ne!(Path::new(lines[2]), host_ns.as_path(), "{out}");
    // The same keys in daemon.json, and bad values named.
    let cfg = d.root.path().join("defaults.json");
    std::fs::write(
        &cfg,
        r#"{"default-shm-size": "128M", "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}, "log-driver": "local", "log-opts": {"max-size": "5m"}, "default-cgroupns-mode": "host", "labels": ["env=test"], "experimental": true, "features": {"buildkit": true}}"#,
    )
    .unwrap();
    let o = berthd(&["--validate", "--config-file", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o:?}");
    for (bad, word) in [
        (
            r#"{"log-driver": "syslogg"}"#,
            "no log driver named 'syslogg'",
        ),
        (
            r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 9, "Hard": 1}}}"#,
            "soft limit must be less than or equal",
        ),
        (r#"{"default-cgroupns-mode": "shared"}"#, "host or private"),
        (
            r#"{"labels": ["novalue"]}"#,
            "bad attribute format: novalue",
        ),
        (
            r#"{"features": {"sparkles": true}}"#,
            "unknown feature \"sparkles\"",
        ),
        (
            r#"{"max-concurrent-downloads": -2}"#,
            "invalid max concurrent downloads: -2",
        ),
        (
            r#"{"max-concurrent-uploads": -1}"#,
            "invalid max concurrent uploads: -1",
        ),
        (
            r#"{"shutdown-timeout": -5}"#,
            "invalid shutdown timeout: -5",
        ),
    ] {
        std::fs::write(&cfg, bad).unwrap();
        let o = berthd(&["--validate", "--config-file", cfg.to_str().unwrap()]);
        assert_eq!(o.code, 1, "{bad}: {o:?}");
        assert!(o.stderr.contains(word), "{bad}: {o:?}");
    }
}

/// dockerd's `icc`, `ip` and `mtu` set the default bridge: its options in `network
/// inspect`, containers that cannot reach each other but reach the host, ports
/// published on that address, the MTU on the bridge and in containers.
#[test]
fn icc_ip_and_mtu_set_the_default_bridge() {
    let d = Daemon::start_with(&["--icc=false", "--ip", "127.0.0.1", "--mtu", "1400"]);
    d.load_busybox();
    let o = d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.bridge.enable_icc\"}} {{index .Options \"com.docker.network.bridge.host_binding_ipv4\"}} {{index .Options \"com.docker.network.driver.mtu\"}}",
        "bridge",
    ]);
    assert_eq!(o.ok(), "false 127.0.0.1 1400\n");
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", d.bridge)).unwrap();
    assert_eq!(mtu.trim(), "1400");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "80",
        "busybox",
        "sh",
        "-c",
        "mkdir /w && echo from-web > /w/i && exec httpd -f -p 80 -h /w",
    ])
    .ok();
    let port = d.docker(&["port", "web", "80"]).ok().trim().to_string();
    assert!(port.starts_with("127.0.0.1:"), "{port}");
    let ip = d
        .docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])
        .ok()
        .trim()
        .to_string();
    let gw = d
        .docker(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", "web"])
        .ok()
        .trim()
        .to_string();
    let out = d.run_rm(&[
        "busybox",
        "sh",
        "-c",
        &format!(
            "cat /sys/class/net/eth0/mtu; ping -c1 -W2 {gw} >/dev/null && echo host-ok; \
             printf 'GET /i HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80 | grep from-web || echo blocked"
        ),
    ]);
    assert_eq!(out, "1400\nhost-ok\nblocked\n");
    // The host reaches it through the published port.
    berth_tests::wait_until("the port answers", || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(&port) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let mut body = String::new();
        s.write_all(b"GET /i HTTP/1.0\r\n\r\n").is_ok()
            && s.read_to_string(&mut body).is_ok()
            && body.ends_with("\r\n\r\nfrom-web\n")
    });
    d.docker(&["rm", "-f", "web"]).ok();
    // The same keys in daemon.json; bad values named.
    let cfg = d.root.path().join("bridge.json");
    for (text, code, word) in [
        (r#"{"icc": false, "ip": "127.0.0.1", "mtu": 1400}"#, 0, ""),
        (r#"{"mtu": 40}"#, 1, "invalid MTU number: 40"),
        (r#"{"ip": "somewhere"}"#, 1, "invalid ip \"somewhere\""),
        (r#"{"icc": "no"}"#, 1, "invalid type"),
        (r#"{"bridge": "none", "icc": false}"#, 1, "--bridge none"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let o = berthd(&["--validate", "--config-file", cfg.to_str().unwrap()]);
        assert_eq!(o.code, code, "{text}: {o:?}");
        assert!(o.stderr.contains(word), "{text}: {o:?}");
    }
    std::fs::write(&cfg, r#"{"mtu": 1400}"#).unwrap();
    let o = berthd(&[
        "--validate",
        "--mtu",
        "1400",
        "--config-file",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("mtu: (from flag"), "{o:?}");
}

/// dockerd's `no-new-privileges`, `init` and `seccomp-profile`: what containers get
/// when they do not say, each undone by a container's own setting; `docker info`
/// names the profile; a bad profile stops the start.
#[test]
fn security_and_init_defaults_reach_containers() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let d = Daemon::start_with(&[
        "--no-new-privileges",
        "--init",
        "--seccomp-profile",
        profile.to_str().unwrap(),
    ]);
    d.load_busybox();
    let o = d.docker(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(
        o.ok()
            .contains(&format!("name=seccomp,profile={}", profile.display())),
        "{o:?}"
    );
    let probe = "grep NoNewPrivs /proc/self/status | tr -d '\\t '; tr '\\0' ' ' < /proc/1/cmdline; echo; mkdir /tmp/m 2>/dev/null && echo made || echo denied";
    let out = d.run_rm(&["busybox", "sh", "-c", probe]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NoNewPrivs:1", "{out}");
    assert!(lines[1].starts_with("/sbin/docker-init -- sh -c"), "{out}");
    assert_eq!(lines[2], "denied", "{out}");
    let out = d.run_rm(&[
        "--init=false",
        "--security-opt",
        "no-new-privileges=false",
        "--security-opt",
        "seccomp=builtin",
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NoNewPrivs:0", "{out}");
    assert!(lines[1].starts_with("sh -c"), "{out}");
    assert_eq!(lines[2], "made", "{out}");
    // Refused: a profile that does not parse, another runtime, the systemd driver.
    let cfg = tmp.path().join("daemon.json");
    std::fs::write(tmp.path().join("bad.json"), "{\"defaultAction\": 7}").unwrap();
    for (text, word) in [
        (
            format!(
                r#"{{"seccomp-profile": "{}"}}"#,
                tmp.path().join("bad.json").display()
            ),
            "loading seccomp profile",
        ),
        (
            r#"{"seccomp-profile": "/nonexistent.json"}"#.to_string(),
            "opening seccomp profile (/nonexistent.json) failed",
        ),
        (
            r#"{"default-runtime": "crun"}"#.to_string(),
            "default runtime \"crun\" is not available",
        ),
        (
            r#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#.to_string(),
            "the systemd driver is not supported",
        ),
    ] {
        std::fs::write(&cfg, &text).unwrap();
        let o = berthd(&["--validate", "--config-file", cfg.to_str().unwrap()]);
        assert_eq!(o.code, 1, "{text}: {o:?}");
        assert!(o.stderr.contains(word), "{text}: {o:?}");
    }
    std::fs::write(
        &cfg,
        r#"{"default-runtime": "runc", "exec-opts": ["native.cgroupdriver=cgroupfs"], "init": true, "no-new-privileges": true, "seccomp-profile": "unconfined"}"#,
    )
    .unwrap();
    let o = berthd(&["--validate", "--config-file", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o:?}");
}

/// `--authorization-plugin`: a legacy authorization plugin (a Python one the test
/// runs) is asked about each request with its JSON body and about each answer;
/// what it refuses gets Docker's 403 and words, the rest is served as usual.
#[test]
fn an_authorization_plugin_decides() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let log = tmp.path().join("calls.log");
    let _plugin = berth_tests::KillOnDrop(
        Command::new("python3")
            .arg(berth_tests::repo_root().join("crates/berth-tests/src/authz_plugin.py"))
            .arg(plugins.join("gate.sock"))
            .arg(&log)
            .spawn()
            .unwrap(),
    );
    berth_tests::wait_until("the plugin's socket", || plugins.join("gate.sock").exists());
    let d = Daemon::start_with(&[
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--authorization-plugin",
        "gate",
    ]);
    d.load_busybox();
    assert_eq!(d.run_rm(&["busybox", "echo", "allowed"]), "allowed\n");
    let o = d.docker(&["run", "--rm", "--privileged", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains(
            "authorization denied by plugin gate: privileged containers are not allowed here"
        ),
        "{o:?}"
    );
    let o = d.docker(&["volume", "ls"]);
    assert!(
        o.stderr
            .contains("authorization denied by plugin gate: volume listings are secret"),
        "{o:?}"
    );
    // The plugin saw the requests and the answers' status codes.
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("\"method\": \"AuthZPlugin.AuthZReq\""),
        "{calls}"
    );
    assert!(
        calls.lines().any(|l| l.contains("AuthZRes")
            && l.contains("/containers/create")
            && l.contains("\"status\": 201")),
        "{calls}"
    );
    // A plugin that is not there: every request fails, as with dockerd.
    let d2 = Daemon::start_with(&[
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--authorization-plugin",
        "absent",
    ]);
    let o = d2.docker(&["info"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("plugin absent failed with error"),
        "{o:?}"
    );
}

#[test]
fn metrics_addr_serves_the_engines_metrics_in_prometheus_format() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(&["--metrics-addr", &addr]);
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "m1", "busybox", "sleep", "60"])
        .ok();
    d.docker(&["create", "--name", "m2", "busybox", "true"])
        .ok();
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = get("/metrics");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/plain; version=0.0.4"), "{page}");
    for line in [
        "engine_daemon_container_states_containers{state=\"running\"} 1",
        "engine_daemon_container_states_containers{state=\"stopped\"} 1",
        "engine_daemon_container_states_containers{state=\"paused\"} 0",
        "# TYPE engine_daemon_events_total counter",
    ] {
        assert!(page.contains(line), "{line} in {page}");
    }
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(
        page.contains(&format!("engine_daemon_engine_cpus_cpus {cpus}\n")),
        "{page}"
    );
    let info = page
        .lines()
        .find(|l| l.starts_with("engine_daemon_engine_info{"))
        .unwrap();
    let version = d
        .docker(&["version", "-f", "{{.Server.Version}}"])
        .ok()
        .trim()
        .to_string();
    assert!(info.contains(&format!("version=\"{version}\"")), "{info}");
    let events: u64 = page
        .lines()
        .find_map(|l| l.strip_prefix("engine_daemon_events_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(events >= 3, "create, start and create at least: {events}");
    assert!(get("/other").starts_with("HTTP/1.1 404"));
    d.docker(&["rm", "-f", "m1", "m2"]).ok();
    // A bad address is refused with its name.
    let o = berthd(&["--validate", "--metrics-addr", "nowhere"]);
    assert!(
        o.stderr.contains("invalid metrics-addr \"nowhere\""),
        "{o:?}"
    );
}

#[test]
fn init_path_binds_another_init_as_docker_init() {
    let d = Daemon::start_with(&["--init-path", "/usr/bin/tini-static"]);
    d.load_busybox();
    let out = d.run_rm(&[
        "--init",
        "busybox",
        "sh",
        "-c",
        "/sbin/docker-init --version; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(out.contains("tini version"), "{out}");
    assert!(out.contains("/sbin/docker-init -- sh -c"), "{out}");
    // berth-shim's own init otherwise.
    let d2 = Daemon::start();
    d2.load_busybox();
    let out = d2.run_rm(&[
        "--init",
        "busybox",
        "sh",
        "-c",
        "/sbin/docker-init --version 2>&1; true",
    ]);
    assert!(!out.contains("tini"), "{out}");
    let o = berthd(&["--validate", "--init-path", "relative/init"]);
    assert!(
        o.stderr
            .contains("init-path relative/init: not an absolute path to a file"),
        "{o:?}"
    );
}

#[test]
fn storage_opts_are_checked_as_dockerd_does() {
    berth_tests::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let exec_root = format!("/run/bt-so-{}", std::process::id());
    let start = |opt: &str| {
        let o = berthd(&[
            "-H",
            &format!("unix://{}/s.sock", tmp.path().display()),
            "--data-root",
            tmp.path().join("data").to_str().unwrap(),
            "--exec-root",
            &exec_root,
            "--pidfile",
            tmp.path().join("pid").to_str().unwrap(),
            "--config-file",
            tmp.path().join("none.json").to_str().unwrap(),
            "--bridge",
            "none",
            "--storage-opt",
            opt,
        ]);
        // Refused at start, nothing left behind.
        let left = std::path::Path::new(&exec_root).exists();
        let _ = std::fs::remove_dir_all(&exec_root);
        assert!(!left, "{exec_root} left behind");
        assert!(!tmp.path().join("pid").exists() && !tmp.path().join("data").exists());
        o
    };
    std::fs::write(tmp.path().join("none.json"), "{}").unwrap();
    // The data root is on ext4 here (/tmp), as dockerd would find it.
    let o = start("overlay2.size=1G");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("Storage Option overlay2.size only supported for backingFS XFS. Found extfs"),
        "{o:?}"
    );
    let o = start("overlay2.mountopt=nodev");
    assert!(
        o.stderr
            .contains("overlay2: unknown option overlay2.mountopt"),
        "{o:?}"
    );
    let o = berthd(&["--validate", "--storage-opt", "nonsense"]);
    assert!(
        o.stderr
            .contains("unable to parse storage-opt key/value: nonsense"),
        "{o:?}"
    );
}

#[test]
fn runtimes_of_a_dockerd_configuration_start_berthd_and_are_refused_when_asked_for() {
    let d = Daemon::start_configured(
        &[],
        r#"{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}"#,
    );
    d.load_busybox();
    let o = d.docker(&["run", "--rm", "--runtime", "nvidia", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("runtime nvidia (nvidia-container-runtime) is configured, but berth runs containers with its own runtime only"),
        "{o:?}"
    );
    d.run_rm(&["--runtime", "runc", "busybox", "true"]);
    let o = d.docker(&["run", "--rm", "--runtime", "other", "busybox", "true"]);
    assert!(
        o.stderr.contains("unknown or invalid runtime name: other"),
        "{o:?}"
    );
}
