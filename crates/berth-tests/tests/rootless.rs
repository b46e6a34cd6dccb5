//! A rootless berthd: started by an unprivileged user (`berthrl`, made by
//! scripts/deps.sh with subordinate IDs), root only in a user namespace of its
//! own, driven by the docker CLI as any berthd.

use berth_tests::Daemon;
use std::io::Read;

fn status_field(pid: &str, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
        .unwrap()
}

#[test]
fn rootless_berthd_runs_containers_as_the_user() {
    let (uid, _) = berth_tests::rootless_user();
    let d = Daemon::start_rootless(&[]);
    // berthd itself is the user's on the host.
    assert_eq!(
        status_field(&d.pid().to_string(), "Uid:")
            .split_whitespace()
            .next(),
        Some(uid.to_string().as_str())
    );
    let info = d.docker(&[
        "info",
        "--format",
        "{{.SecurityOptions}} {{.CgroupDriver}} {{.Driver}}",
    ]);
    assert!(info.ok().contains("name=rootless"), "{}", info.stdout);
    assert!(info.stdout.contains(" none overlay2"), "{}", info.stdout);
    d.load_busybox();
    // Root inside.
    assert!(d
        .run_rm(&["busybox", "id"])
        .starts_with("uid=0(root) gid=0(root)"));
    // The user outside, and the image's other users the user's subordinate IDs.
    d.docker(&["run", "-d", "--name", "rootc", "busybox", "sleep", "300"])
        .ok();
    d.docker(&[
        "run", "-d", "--name", "subc", "-u", "1000", "busybox", "sleep", "300",
    ])
    .ok();
    let pid = |c: &str| {
        d.docker(&["inspect", "-f", "{{.State.Pid}}", c])
            .ok()
            .trim()
            .to_string()
    };
    assert_eq!(
        status_field(&pid("rootc"), "Uid:")
            .split_whitespace()
            .next(),
        Some(uid.to_string().as_str()),
        "the container's root is the user"
    );
    let sub: u64 = status_field(&pid("subc"), "Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        sub >= 100_000,
        "uid 1000 inside is a subordinate ID outside: {sub}"
    );
    // Limits cannot be applied without cgroups: discarded with dockerd's warning.
    let o = d.docker(&["run", "--rm", "-m", "64m", "busybox", "true"]);
    assert!(o.stderr.contains("Limitation discarded"), "{o:?}");
    // No cgroups: top lists the container's PID namespace, commit reads it
    // running, pause says why it cannot.
    let top = d.docker(&["top", "rootc"]);
    assert!(top.ok().contains("sleep 300"), "{top:?}");
    d.docker(&["exec", "rootc", "touch", "/made"]).ok();
    d.docker(&["commit", "rootc", "rl:committed"]).ok();
    assert_eq!(d.run_rm(&["rl:committed", "ls", "/made"]), "/made\n");
    let o = d.docker(&["pause", "rootc"]);
    assert!(o.stderr.contains("pause needs the freezer cgroup"), "{o:?}");
    d.docker(&["rm", "-f", "rootc", "subc"]).ok();
}

#[test]
fn rootless_volumes_keep_data_and_ports_answer_on_the_host() {
    let d = Daemon::start_rootless(&[]);
    d.load_busybox();
    d.run_rm(&["-v", "data:/d", "busybox", "sh", "-c", "echo kept > /d/f"]);
    assert_eq!(
        d.run_rm(&["-v", "data:/d", "busybox", "cat", "/d/f"]),
        "kept\n"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "busybox",
        "sh",
        "-c",
        "while true; do echo hello from rootless | nc -l -p 8080; done",
    ])
    .ok();
    let mut got = String::new();
    berth_tests::wait_until("the published port to answer", || {
        got.clear();
        std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut s| {
                s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
                s.read_to_string(&mut got)
            })
            .is_ok()
            && got.contains("hello")
    });
    assert_eq!(got, "hello from rootless\n");
    d.docker(&["rm", "-f", "web"]).ok();
    // The forward goes with the container.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// With nothing said, a rootless berthd uses the user's places (the socket in
/// XDG_RUNTIME_DIR, the data in ~/.local/share/berth) and `berth` run by the
/// user finds it there; its socket is the user's, not the docker group's.
#[test]
fn rootless_defaults_are_the_users_places_and_berth_finds_them() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let (uid, gid) = berth_tests::rootless_user();
    let dir = tempfile::Builder::new()
        .prefix("brl-")
        .tempdir_in("/tmp")
        .unwrap();
    let (xdg, home) = (dir.path().join("x"), dir.path().join("h"));
    for p in [dir.path(), &xdg, &home] {
        std::fs::create_dir_all(p).unwrap();
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    let as_user = |program: std::path::PathBuf| {
        let mut c = std::process::Command::new(program);
        c.uid(uid)
            .gid(gid)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("XDG_RUNTIME_DIR", &xdg)
            .env("HOME", &home);
        c
    };
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut daemon = as_user(berth_tests::bin("berthd"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let sock = xdg.join("berth.sock");
    berth_tests::wait_until("the user's socket", || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid, gid),
        "the socket is the user's"
    );
    let mut info = as_user(berth_tests::bin("berth"));
    info.args([
        "info",
        "--format",
        "{{.DockerRootDir}} {{.SecurityOptions}}",
    ]);
    let o = berth_tests::run(info, None);
    assert_eq!(
        o.ok().split_whitespace().next().unwrap(),
        home.join(".local/share/berth").display().to_string()
    );
    assert!(o.stdout.contains("name=rootless"), "{o:?}");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(daemon.wait().unwrap().success());
    assert!(!sock.exists(), "the socket goes with berthd");
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            std::fs::read(p.path().join("cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains("slirp4netns")
                    && String::from_utf8_lossy(&c).contains(dir.path().to_str().unwrap())
            })
        })
        .count();
    assert_eq!(left, 0, "slirp4netns goes with berthd");
}

/// With a cgroup v2 subtree delegated to the user (as systemd's Delegate=yes
/// does it; here made by the test in this hybrid host's cgroup2 hierarchy, which
/// has no controllers), a rootless berthd gives each container a cgroup there:
/// top lists it, pause freezes it (cgroup.freeze), and the limits of controllers
/// the subtree lacks are discarded with dockerd's warnings.
#[test]
fn rootless_berthd_uses_a_delegated_cgroup_subtree() {
    let d = Daemon::start_rootless_delegated(&[]);
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "cg1", "busybox", "sleep", "300"])
        .ok();
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", "cg1"])
        .ok()
        .trim()
        .to_string();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "cg1"])
        .ok()
        .trim()
        .to_string();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let unified = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    assert_eq!(
        unified,
        format!("/{}/containers/{id}", d.cgroup_parent),
        "the container's cgroup is in the delegated subtree"
    );
    let berthd = std::fs::read_to_string(format!("/proc/{}/cgroup", d.pid())).unwrap();
    assert!(
        berthd.contains(&format!("0::/{}/berthd", d.cgroup_parent)),
        "berthd moved itself into a leaf: {berthd}"
    );
    let top = d.docker(&["top", "cg1"]);
    assert!(top.ok().contains("sleep 300"), "{top:?}");
    let events = berth_tests::cgroup2_mount()
        .join(unified.trim_start_matches('/'))
        .join("cgroup.events");
    let frozen = || {
        std::fs::read_to_string(&events)
            .unwrap()
            .contains("frozen 1")
    };
    d.docker(&["pause", "cg1"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}}", "cg1"])
            .ok()
            .trim(),
        "paused"
    );
    assert!(frozen(), "the container's cgroup is frozen");
    d.docker(&["unpause", "cg1"]).ok();
    assert!(!frozen());
    let o = d.docker(&[
        "run",
        "--rm",
        "-m",
        "64m",
        "--pids-limit",
        "10",
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("memory limit capabilities"), "{o:?}");
    assert!(o.stderr.contains("pids limit capabilities"), "{o:?}");
    d.docker(&["rm", "-f", "cg1"]).ok();
}
