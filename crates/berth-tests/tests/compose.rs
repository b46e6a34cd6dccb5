//! Docker Compose v2 (the real binary, installed as a docker CLI plugin by
//! scripts/deps.sh) against berthd.

use berth_tests::Daemon;

/// A project using every option of an ordinary compose file that berthd once
/// refused: it comes up, each option has its effect, and it goes down leaving
/// nothing.
#[test]
fn compose_up_with_privileges_namespaces_devices_and_knobs() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.root.path().join("project");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        r#"services:
  app:
    image: busybox
    command: sleep 300
    cap_add: [NET_ADMIN]
    cap_drop: [CHOWN]
    security_opt: ["no-new-privileges:true"]
    sysctls:
      net.ipv4.ip_forward: "1"
    shm_size: 128m
    devices: ["/dev/zero:/dev/myzero"]
    group_add: ["4242"]
    oom_score_adj: 500
    oom_kill_disable: true
    mem_limit: 64m
    ipc: shareable
    runtime: runc
    userns_mode: host
  priv:
    image: busybox
    command: sleep 300
    privileged: true
    pid: host
"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let compose = |args: &[&str]| {
        let mut a = vec!["compose", "-f", f, "-p", "proj"];
        a.extend_from_slice(args);
        d.docker(&a)
    };
    let o = compose(&["up", "-d"]);
    assert_eq!(o.code, 0, "{o:?}");
    let exec = |svc: &str, script: &str| {
        compose(&["exec", "-T", svc, "sh", "-c", script])
            .ok()
            .trim()
            .to_string()
    };
    let status = exec(
        "app",
        "grep -E '^(CapEff|NoNewPrivs|Groups):' /proc/self/status",
    );
    assert!(status.contains("CapEff:\t00000000a80435fa"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("4242"), "{status}");
    assert_eq!(exec("app", "cat /proc/sys/net/ipv4/ip_forward"), "1");
    assert_eq!(exec("app", "cat /proc/1/oom_score_adj"), "500");
    assert_eq!(
        exec("app", "df -k /dev/shm | tail -1 | awk '{print $2}'"),
        "131072"
    );
    assert_eq!(exec("app", "head -c 3 /dev/myzero | wc -c"), "3");
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert_eq!(exec("priv", "cat /proc/1/comm"), host_init.trim());
    assert_eq!(
        exec("priv", "grep CapEff /proc/self/status | cut -f2"),
        format!("{:016x}", berth_tests::own_capabilities())
    );
    let o = compose(&["down"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
    assert!(!d.docker(&["network", "ls"]).ok().contains("proj_default"));
}

/// `berth compose ...` runs Docker's compose plugin, from where the docker CLI
/// finds it, as the docker CLI runs it, pointed at berth's daemon; a command
/// neither berth nor a plugin has is refused as before.
#[test]
fn berth_compose_runs_the_docker_cli_plugin() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "berthcompose",
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: busybox\n    command: sleep 60\n",
        )],
    );
    let berth = |args: &[&str]| {
        let mut c = std::process::Command::new(berth_tests::bin("berth"));
        c.args(args)
            .current_dir(&dir)
            .env("BERTH_HOST", d.host())
            .env_remove("DOCKER_HOST");
        berth_tests::run(c, None)
    };
    assert!(berth(&["compose", "version"])
        .ok()
        .starts_with("Docker Compose version v2."));
    berth(&["compose", "-p", "bc", "up", "-d"]).ok();
    let ps = d.docker(&["ps", "--format", "{{.Names}}"]).ok().to_string();
    assert_eq!(ps, "bc-web-1\n");
    // -H before the command word reaches the plugin too.
    let host = d.host();
    let o = berth(&[
        "-H",
        &host,
        "compose",
        "-p",
        "bc",
        "ps",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(o.ok(), "bc-web-1\n");
    berth(&["compose", "-p", "bc", "down", "-t", "0"]).ok();
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
    let o = berth(&["nosuchplugin"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("unrecognized subcommand 'nosuchplugin'"),
        "{o:?}"
    );
}
