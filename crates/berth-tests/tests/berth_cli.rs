//! The same foundation driven by our own `berth` CLI.

use berth_tests::Daemon;

#[test]
fn berth_runs_like_docker() {
    let d = Daemon::start();
    let tar = d.busybox_archive("busybox:latest");
    assert_eq!(
        d.berth(&["load", "-i", tar.to_str().unwrap()]).ok(),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(
        d.berth(&["run", "--rm", "busybox", "echo", "hello"]).ok(),
        "hello\n"
    );
    assert_eq!(
        d.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
            .code,
        3
    );
    let o = d.berth(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(o.code, 127);
    assert!(
        o.stderr.contains("executable file not found in $PATH"),
        "{o:?}"
    );
    assert_eq!(
        d.berth(&["run", "--rm", "busybox", "/etc/passwd"]).code,
        126
    );
    let o = d.berth(&["run", "--bogus-flag", "busybox"]);
    assert_eq!(o.code, 125);
    assert!(o.stderr.contains("--bogus-flag"), "{o:?}");
    let o = d.berth(&[
        "run",
        "--rm",
        "-u",
        "bob",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "id -u; echo $X; pwd",
    ]);
    assert_eq!(o.ok(), "1000\n1\n/tmp\n");
    // BERTH_HOST is honoured like DOCKER_HOST.
    let mut cmd = std::process::Command::new(berth_tests::bin("berth"));
    cmd.args(["ps", "-aq"])
        .env("BERTH_HOST", d.host())
        .env_remove("DOCKER_HOST");
    assert_eq!(berth_tests::run(cmd, None).ok(), "");
    let mut cmd = std::process::Command::new(berth_tests::bin("berth"));
    cmd.args([
        "-H",
        &d.host(),
        "version",
        "--format",
        "{{.Server.ApiVersion}}",
    ])
    .env_remove("DOCKER_HOST");
    assert_eq!(
        berth_tests::run(cmd, None).ok().trim(),
        berth_api::API_VERSION
    );
}

#[test]
fn berth_lifecycle_and_listing() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d
        .berth(&[
            "run",
            "-d",
            "--name",
            "web",
            "-l",
            "tier=front",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok()
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = d.berth(&["ps"]);
    let lines: Vec<&str> = ps.ok().lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{ps:?}"
    );
    assert!(
        lines[1].starts_with(&id[..12])
            && lines[1].contains("\"sleep 1000\"")
            && lines[1].ends_with("web"),
        "{ps:?}"
    );
    assert_eq!(
        d.berth(&["ps", "--format", "{{.Names}} {{.Label \"tier\"}}"])
            .ok(),
        "web front\n"
    );
    let json = d.berth(&["ps", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.ok().trim()).unwrap();
    assert_eq!(v["Names"], "web");
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Running}} {{.Name}}", "web"])
            .ok(),
        "true /web\n"
    );
    let o = d.berth(&["rm", "web"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains(
            "Error response from daemon: cannot remove container \"/web\": container is running"
        ),
        "{o:?}"
    );
    d.berth(&["stop", "-t", "1", "web"]).ok();
    assert!(d.berth(&["ps", "-a"]).ok().contains("Exited (137)"));
    d.berth(&["start", "web"]).ok();
    d.berth(&["kill", "-s", "TERM", "web"]).ok();
    d.berth(&["kill", "web"]).ok();
    assert_eq!(d.berth(&["wait", "web"]).ok(), "137\n");
    d.berth(&[
        "run",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ])
    .ok();
    let o = d.berth(&["logs", "talk"]);
    assert_eq!((o.ok(), o.stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(d.berth(&["rm", "web", "talk"]).ok(), "web\ntalk\n");
    assert_eq!(d.berth(&["ps", "-aq"]).ok(), "");
}

#[test]
fn berth_images_save_tag_rmi() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.berth(&["images"]);
    let lines: Vec<&str> = o.ok().lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{o:?}"
    );
    assert!(lines[1].starts_with("busybox      latest    "), "{o:?}");
    d.berth(&["tag", "busybox", "localhost:5000/bb:v2"]).ok();
    assert_eq!(
        d.berth(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "localhost:5000/bb"
        ])
        .ok(),
        "localhost:5000/bb:v2\n"
    );
    let out = d.root.path().join("s.tar");
    d.berth(&["save", "-o", out.to_str().unwrap(), "localhost:5000/bb:v2"])
        .ok();
    assert_eq!(
        d.berth(&["rmi", "localhost:5000/bb:v2"]).ok(),
        "Untagged: localhost:5000/bb:v2\n"
    );
    assert_eq!(
        d.berth(&["load", "-i", out.to_str().unwrap()]).ok(),
        "Loaded image: localhost:5000/bb:v2\n"
    );
    let o = d.berth(&["rmi", "nosuch"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("No such image: nosuch"), "{o:?}");
    let o = d.berth(&["history", "-q", "busybox"]);
    assert_eq!(o.ok().trim().len(), 12);
    let info = d.berth(&[
        "info",
        "--format",
        "{{.Images}} {{.Driver}} {{.CgroupDriver}}",
    ]);
    assert_eq!(info.ok(), "1 overlay2 cgroupfs\n");
}

/// Docker's command groups: `berth container ls`, `berth image rm`, `berth image
/// inspect` are the top-level commands; a subcommand a group lacks is refused
/// (125) with the group's list.
#[test]
fn command_groups_as_the_docker_cli_has_them() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["create", "--name", "grouped", "busybox"]).ok();
    assert_eq!(
        d.berth(&["container", "ls", "-a", "--format", "{{.Names}}"])
            .ok(),
        "grouped\n"
    );
    assert_eq!(
        d.berth(&["container", "inspect", "-f", "{{.Name}}", "grouped"])
            .ok(),
        "/grouped\n"
    );
    assert_eq!(
        d.berth(&["image", "inspect", "-f", "{{.Os}}", "busybox"])
            .ok(),
        "linux\n"
    );
    d.berth(&["image", "tag", "busybox", "bb:grouped"]).ok();
    d.berth(&["image", "rm", "bb:grouped"]).ok();
    assert_eq!(
        d.berth(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .ok(),
        "busybox:latest\n"
    );
    d.berth(&["container", "rm", "grouped"]).ok();
    assert_eq!(d.berth(&["container", "list", "-aq"]).ok(), "");
    let o = d.berth(&["container", "fly"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr
            .contains("unknown command \"fly\" for \"berth container\""),
        "{o:?}"
    );
}

/// `berth diff`, `berth events` (relative --since, filters, a template, json) and
/// `berth system df`, against what the docker CLI answers from the same daemon.
#[test]
fn diff_events_and_system_df() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "echo x > /new; mkdir /made",
    ])
    .ok();
    let ours = d.berth(&["diff", "changed"]).ok().to_string();
    assert_eq!(ours, d.docker(&["diff", "changed"]).ok(), "{ours}");
    assert!(
        ours.contains("A /new\n") && ours.contains("A /made\n"),
        "{ours}"
    );
    assert_eq!(d.berth(&["container", "diff", "changed"]).ok(), ours);
    d.docker(&["rm", "changed"]).ok();
    let o = d.berth(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "type=container",
        "--filter",
        "event=destroy",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(o.ok(), "destroy changed\n");
    let plain = d.berth(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "event=die",
    ]);
    let line = plain.ok().to_string();
    assert!(
        line.contains(" container die ")
            && line.contains("(exitCode=0, image=busybox, name=changed)"),
        "{line}"
    );
    let json = d.berth(&[
        "system",
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--format",
        "json",
        "--filter",
        "event=start",
    ]);
    let v: serde_json::Value = serde_json::from_str(json.ok().lines().next().unwrap()).unwrap();
    assert_eq!(v["Actor"]["Attributes"]["name"], "changed");
    let df = d.berth(&["system", "df"]).ok().to_string();
    let lines: Vec<&str> = df.lines().collect();
    assert!(
        lines[0].starts_with("TYPE") && lines[0].contains("RECLAIMABLE"),
        "{df}"
    );
    assert!(
        lines[1].starts_with("Images") && lines[1].contains(" 1 "),
        "{df}"
    );
    let types = d
        .berth(&["system", "df", "--format", "{{.Type}}:{{.TotalCount}}"])
        .ok()
        .to_string();
    assert_eq!(
        types,
        "Images:1\nContainers:0\nLocal Volumes:0\nBuild Cache:0\n"
    );
}

/// `berth system prune`: asks first (a "no" removes nothing), then with -f removes
/// stopped containers, unused networks, dangling images and the build cache, and
/// with --volumes anonymous volumes; a running container and its image stay.
#[test]
fn system_prune_asks_then_removes_what_is_unused() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "--name", "stopped", "-v", "/anon", "busybox", "true"])
        .ok();
    d.docker(&["run", "-d", "--name", "running", "busybox", "sleep", "60"])
        .ok();
    d.docker(&["network", "create", "unused"]).ok();
    let o = d.berth_in(&["system", "prune"], b"n\n");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("WARNING! This will remove:"), "{o:?}");
    assert_eq!(d.docker(&["ps", "-aq"]).ok().lines().count(), 2);
    let o = d.berth(&["system", "prune", "-f", "--volumes"]);
    let out = o.ok().to_string();
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Deleted Networks:\nunused\n\n"), "{out}");
    assert!(out.contains("Deleted Volumes:\n"), "{out}");
    assert!(
        out.ends_with("B\n") && out.contains("Total reclaimed space: "),
        "{out}"
    );
    assert_eq!(
        d.docker(&["ps", "-a", "--format", "{{.Names}}"]).ok(),
        "running\n"
    );
    assert_eq!(d.docker(&["volume", "ls", "-q"]).ok(), "");
    assert_eq!(d.docker(&["images", "-q"]).ok().lines().count(), 1);
    d.docker(&["rm", "-f", "running"]).ok();
}
