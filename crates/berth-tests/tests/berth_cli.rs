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

/// A tree of a directory: each path with what it is (file content, link target,
/// or a directory), for comparing what two CLIs produced.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&p).unwrap().display()
                ));
            } else if m.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.push(format!(
                    "{rel}: {}",
                    std::fs::read_to_string(&p).unwrap_or_default().trim()
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// `berth cp` both ways gives what `docker cp` gives: each case run with both
/// CLIs into their own directories and the trees compared; links are copied as
/// links, a file beside the destination is never touched, `-` streams a tar.
#[test]
fn cp_matches_the_docker_cli() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run", "-d", "--name", "cc", "busybox", "sh", "-c",
        "mkdir -p /data/sub && echo a > /data/a.txt && echo b > /data/sub/b.txt && ln -s /etc/passwd /data/link && sleep 300",
    ])
    .ok();
    berth_tests::wait_until("the files", || {
        d.docker(&["exec", "cc", "test", "-L", "/data/link"]).code == 0
    });
    let base = d.root.path().join("cp");
    for who in ["docker", "berth"] {
        let w = base.join(who);
        std::fs::create_dir_all(w.join("existing")).unwrap();
        std::fs::write(w.join("a.txt"), "mine").unwrap();
        std::fs::write(w.join("local.txt"), "from the host").unwrap();
        std::fs::create_dir_all(w.join("hostdir/inner")).unwrap();
        std::fs::write(w.join("hostdir/inner/h.txt"), "h").unwrap();
    }
    let cases: Vec<(String, String)> = vec![
        ("cc:/data/a.txt".into(), "other.txt".into()),
        ("cc:/data".into(), "existing".into()),
        ("cc:/data".into(), "fresh".into()),
        ("cc:/data/.".into(), "contents".into()),
        ("cc:/data/sub/".into(), "existing".into()),
    ];
    for (who, cli) in [("docker", false), ("berth", true)] {
        let w = base.join(who);
        std::fs::create_dir_all(w.join("contents")).unwrap();
        for (src, dst) in &cases {
            let dst = w.join(dst).display().to_string();
            let args = ["cp", "-q", src.as_str(), dst.as_str()];
            let o = if cli { d.berth(&args) } else { d.docker(&args) };
            assert_eq!(o.code, 0, "{who} cp {src} {dst}: {o:?}");
        }
        // Host to container, into per-CLI places.
        let to = |dst: &str| format!("cc:/up-{who}{dst}");
        d.docker(&["exec", "cc", "mkdir", "-p", &format!("/up-{who}")])
            .ok();
        for (src, dst) in [
            ("local.txt", "/"),
            ("local.txt", "/renamed.txt"),
            ("hostdir", "/dirnew"),
            ("hostdir", "/"),
        ] {
            let src = w.join(src).display().to_string();
            let dst = to(dst);
            let args = ["cp", "-q", src.as_str(), dst.as_str()];
            let o = if cli { d.berth(&args) } else { d.docker(&args) };
            assert_eq!(o.code, 0, "{who} cp {src} {dst}: {o:?}");
        }
    }
    assert_eq!(tree(&base.join("berth")), tree(&base.join("docker")));
    assert_eq!(
        std::fs::read_to_string(base.join("berth/a.txt")).unwrap(),
        "mine"
    );
    assert!(tree(&base.join("berth")).contains(&"fresh/link -> /etc/passwd".to_string()));
    let listing = |who: &str| {
        d.docker(&["exec", "cc", "find", &format!("/up-{who}")])
            .ok()
            .replace(&format!("/up-{who}"), "")
            .lines()
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(listing("berth"), listing("docker"));
    assert_eq!(
        d.docker(&["exec", "cc", "cat", "/up-berth/renamed.txt"])
            .ok(),
        "from the host"
    );
    // A tar on stdout.
    let o = d.berth(&["cp", "cc:/data/sub", "-"]);
    let mut a = tar::Archive::new(o.stdout.as_bytes());
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "sub/b.txt"), "{names:?}");
    let o = d.berth(&["cp", "cc:/nonexistent", base.to_str().unwrap()]);
    assert_ne!(o.code, 0);
    d.docker(&["rm", "-f", "cc"]).ok();
}

/// `berth stats --no-stream`: the docker CLI's columns and figures.
#[test]
fn stats_no_stream_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run", "-d", "--name", "busy", "-m", "64m", "busybox", "sleep", "300",
    ])
    .ok();
    let docker = d.docker(&["stats", "--no-stream"]).ok().to_string();
    let berth = d.berth(&["stats", "--no-stream"]).ok().to_string();
    let header = |s: &str| {
        s.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(header(&berth), header(&docker));
    let row: Vec<&str> = berth.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[1], "busy", "{berth}");
    assert!(berth.contains(" / 64MiB "), "{berth}");
    assert_eq!(*row.last().unwrap(), "1", "one process: {berth}");
    let o = d.berth(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}: {{.PIDs}}",
        "busy",
    ]);
    assert_eq!(o.ok(), "busy: 1\n");
    d.docker(&["rm", "-f", "busy"]).ok();
}

/// `berth context`: create, ls, use, show, inspect, rm in the docker CLI's own
/// store: each CLI sees the other's contexts, and `berth` with no host reaches
/// the daemon through the context in use.
#[test]
fn contexts_shared_with_the_docker_cli() {
    let d = Daemon::start();
    let o = d.berth(&[
        "context",
        "create",
        "mine",
        "--description",
        "a test context",
        "--docker",
        &format!("host={}", d.host()),
    ]);
    assert_eq!(o.ok(), "mine\n");
    assert!(o.stderr.contains("Successfully created context \"mine\""));
    let o = d.docker(&["context", "ls", "--format", "{{.Name}} {{.DockerEndpoint}}"]);
    assert!(o.ok().contains(&format!("mine {}", d.host())), "{o:?}");
    // The same table from both CLIs.
    assert_eq!(
        d.berth(&["context", "ls"]).ok(),
        d.docker(&["context", "ls"]).ok()
    );
    let o = d.berth(&[
        "context",
        "inspect",
        "mine",
        "--format",
        "{{.Endpoints.docker.Host}} {{.Metadata.Description}}",
    ]);
    assert_eq!(o.ok(), format!("{} a test context\n", d.host()));
    assert_eq!(d.berth(&["context", "use", "mine"]).ok(), "mine\n");
    // DOCKER_HOST set: the default context, for both CLIs.
    assert_eq!(d.docker(&["context", "show"]).ok(), "default\n");
    assert_eq!(d.berth(&["context", "show"]).ok(), "default\n");
    // Without it, the current context leads to the daemon.
    let bare = |program: std::path::PathBuf, args: &[&str]| {
        let mut c = std::process::Command::new(program);
        c.args(args)
            .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("BERTH_HOST");
        berth_tests::run(c, None)
    };
    assert_eq!(
        bare(berth_tests::bin("berth"), &["context", "show"]).ok(),
        "mine\n"
    );
    assert_eq!(
        bare(berth_tests::DOCKER.into(), &["context", "show"]).ok(),
        "mine\n"
    );
    assert_eq!(
        bare(
            berth_tests::bin("berth"),
            &["version", "--format", "{{.Server.ApiVersion}}"]
        )
        .ok(),
        "1.51\n"
    );
    let o = bare(berth_tests::bin("berth"), &["context", "rm", "mine"]);
    assert!(
        o.stderr.contains("is in use, set -f flag to force remove"),
        "{o:?}"
    );
    d.berth(&["context", "use", "default"]).ok();
    assert_eq!(d.berth(&["context", "rm", "mine"]).ok(), "mine\n");
    let o = d.docker(&["context", "ls", "-q"]);
    assert_eq!(o.ok(), "default\n");
    let o = d.berth(&[
        "context",
        "create",
        "bad name",
        "--docker",
        "host=unix:///x",
    ]);
    assert_ne!(o.code, 0);
    let o = d.berth(&["context", "use", "nowhere"]);
    assert!(
        o.stderr.contains("context \"nowhere\" does not exist"),
        "{o:?}"
    );
}

/// `berth system df -v` prints what `docker system df -v` prints (times aside).
#[test]
fn system_df_verbose_like_docker() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["volume", "create", "vol1"]).ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "dfv",
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "echo x > /f; sleep 300",
    ])
    .ok();
    d.docker(&["create", "--name", "idle", "busybox", "true"])
        .ok();
    let norm = |s: &str| -> Vec<String> {
        let re = regex::Regex::new(
            r"(Less than a second|About a minute|About an hour|\d+ (seconds|minutes|hours|years?|days)) ago|Up (Less than a second|About a minute|\d+ seconds)",
        )
        .unwrap();
        s.lines()
            .map(|l| {
                re.replace_all(l, "T")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let b = d.berth(&["system", "df", "-v"]).ok().to_string();
    let k = d.docker(&["system", "df", "-v"]).ok().to_string();
    assert_eq!(norm(&b), norm(&k), "berth:\n{b}\ndocker:\n{k}");
    assert!(b.contains("vol1"), "{b}");
    d.docker(&["rm", "-f", "dfv"]).ok();
}
