//! `--userns-remap`: containers' root is an unprivileged range of the host's IDs;
//! their image and writable layer keep the container's own IDs on disk through
//! ID-mapped mounts, their volumes hold the remapped IDs, as with dockerd.

use berth_tests::Daemon;
use std::os::unix::fs::MetadataExt;

/// The host range dockremap got (its /etc/subuid entry).
fn dockremap_start() -> u32 {
    let text = std::fs::read_to_string("/etc/subuid").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("dockremap:"))
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no dockremap range in /etc/subuid: {text}"))
}

fn remapped() -> Daemon {
    let d = Daemon::start_with(&["--userns-remap", "default"]);
    d.load_busybox();
    d
}

fn sh(d: &Daemon, args: &[&str], script: &str) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend(["busybox", "sh", "-c", script]);
    d.docker(&a).ok().trim().to_string()
}

fn exec(d: &Daemon, c: &str, script: &str) -> berth_tests::Out {
    d.docker(&["exec", c, "sh", "-c", script])
}

#[test]
fn remapped_root_is_root_inside_and_dockremap_outside() {
    let d = remapped();
    let start = dockremap_start();
    let info = d
        .docker(&["info", "-f", "{{json .SecurityOptions}}"])
        .ok()
        .to_string();
    assert!(info.contains("\"name=userns\""), "{info}");
    // `default` made dockremap with 65536 IDs of each kind.
    let sub = std::fs::read_to_string("/etc/subgid").unwrap();
    assert!(
        sub.lines()
            .any(|l| l.starts_with("dockremap:") && l.ends_with(":65536")),
        "{sub}"
    );
    let out = sh(
        &d,
        &[],
        "id -u; cat /proc/self/uid_map; ls -ln / | grep ' bin$'; echo hi > /new && cat /new",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &start.to_string(), "65536"], "{out}");
    // The image's files are the container root's, and it writes its own root.
    assert!(out.contains(" 0        0 ") && out.ends_with("hi"), "{out}");

    d.docker(&["run", "-d", "--name", "c1", "busybox", "sleep", "60"])
        .ok();
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", "c1"])
        .ok()
        .trim()
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let want: Vec<String> = vec![start.to_string(); 4];
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        want,
        "{status}"
    );
    // An exec joins the same user namespace.
    let out = exec(&d, "c1", "id -u; cat /proc/self/uid_map")
        .ok()
        .to_string();
    assert!(
        out.starts_with("0\n") && out.contains(&format!(" {start} ")),
        "{out}"
    );
    // ...the container's own, not the host's.
    let exec_ns = exec(&d, "c1", "readlink /proc/self/ns/user")
        .ok()
        .trim()
        .to_string();
    assert_eq!(
        exec_ns,
        std::fs::read_link(format!("/proc/{pid}/ns/user"))
            .unwrap()
            .display()
            .to_string()
    );
    assert_ne!(
        exec_ns,
        std::fs::read_link("/proc/self/ns/user")
            .unwrap()
            .display()
            .to_string()
    );
    // berth's CLI the same way.
    let out = d
        .berth(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"])
        .ok()
        .to_string();
    assert!(out.contains(&format!(" {start} ")), "{out}");
    let out = d
        .berth(&[
            "run",
            "--rm",
            "--userns",
            "host",
            "busybox",
            "cat",
            "/proc/self/uid_map",
        ])
        .ok()
        .to_string();
    assert!(out.contains("4294967295"), "{out}");
    // --userns=host opts out: the host's IDs, the identity map.
    let out = sh(&d, &["--userns=host"], "cat /proc/self/uid_map");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "{out}"
    );
    d.docker(&["rm", "-f", "c1"]).ok();
}

#[test]
fn remapped_root_cannot_write_the_hosts_root_files() {
    let d = remapped();
    let host = d.files("hostdir", &[("f", "host's\n")]);
    let bind = format!("{}:/host", host.display());
    // The host's root is nobody inside: its files are not the container's to
    // write, whatever the container's root does.
    let out = sh(
        &d,
        &["-v", &bind],
        "ls -ln /host/f; echo x 2>&1 > /host/f || echo refused; touch /host/new 2>&1 || echo refused again",
    );
    assert!(out.contains(" 65534    65534 "), "{out}");
    assert!(
        out.contains("Permission denied") && out.contains("refused again"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "host's\n");
    assert!(!host.join("new").exists());
    // Nor the init binary bound in from the host, even made writable again.
    let out = sh(
        &d,
        &["--init", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"],
        "mount -o remount,rw,bind /sbin/docker-init 2>&1; echo x >> /sbin/docker-init || echo refused",
    );
    assert!(out.ends_with("refused"), "{out}");
}

#[test]
fn volumes_hold_remapped_ids_and_the_writable_layer_the_containers_own() {
    let d = remapped();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "c2",
        "-v",
        "vol:/data",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    exec(
        &d,
        "c2",
        "echo v > /data/f && echo w > /data/g && chown 1234:1234 /data/g && echo l > /w && chown 42:43 /w",
    )
    .ok();
    // On disk, a volume holds the container's host IDs, as with dockerd: what a
    // remapped root writes there is the remapped user's.
    let start = dockremap_start();
    let data = d.data_root.join("volumes/vol/_data");
    let owner = |p: &std::path::Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner(&data), (start, start));
    assert_eq!(owner(&data.join("f")), (start, start));
    assert_eq!(owner(&data.join("g")), (start + 1234, start + 1234));
    let out = sh(&d, &["--userns=host", "-v", "vol:/data"], "ls -ln /data");
    assert!(out.contains(&format!(" {start}   ")), "{out}");
    // The image's content copied into a new volume is the container root's too.
    let out = sh(
        &d,
        &["-v", "etc:/etc"],
        "ls -ln /etc/passwd; echo ok >> /etc/passwd && echo written",
    );
    assert!(
        out.contains(" 0        0 ") && out.ends_with("written"),
        "{out}"
    );
    let etc = d.data_root.join("volumes/etc/_data");
    assert_eq!(owner(&etc.join("passwd")), (start, start));
    // The writable layer too: copied out and committed with the container's IDs.
    let tar = std::process::Command::new(berth_tests::DOCKER)
        .args(["cp", "c2:/w", "-"])
        .env("DOCKER_HOST", d.host())
        .output()
        .unwrap();
    assert!(tar.status.success(), "{tar:?}");
    let mut a = tar::Archive::new(&tar.stdout[..]);
    let e = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (e.header().uid().unwrap(), e.header().gid().unwrap()),
        (42, 43)
    );
    // Copied in: made as the container's root, owners kept as the tar has them.
    let src = d.files("cpin", &[("in", "copied\n")]);
    d.docker(&["cp", src.join("in").to_str().unwrap(), "c2:/in"])
        .ok();
    let out = exec(&d, "c2", "ls -ln /in; cat /in").ok().to_string();
    assert!(
        out.contains(" 0        0 ") && out.ends_with("copied\n"),
        "{out}"
    );
    d.docker(&["commit", "c2", "snap"]).ok();
    let out = d.run_rm(&["--userns=host", "snap", "ls", "-ln", "/w"]);
    assert!(out.contains(" 42       43 "), "{out}");
    d.docker(&["rm", "-f", "c2"]).ok();
}

#[test]
fn remapped_containers_have_their_network_devices_terminal_and_limits() {
    let d = remapped();
    // A bridge endpoint made by berthd, with a published port.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "echo served | nc -l -p 80",
    ])
    .ok();
    let port = d.docker(&["port", "web", "80"]).ok().trim().to_string();
    let addr = port.lines().next().unwrap().to_string();
    let mut got = String::new();
    berth_tests::wait_until("the published port answers", || {
        use std::io::Read;
        match std::net::TcpStream::connect(&addr) {
            Ok(mut s) => {
                got.clear();
                s.read_to_string(&mut got).is_ok() && got == "served\n"
            }
            Err(_) => false,
        }
    });
    d.docker(&["rm", "-f", "web"]).ok();
    // sysfs is read-only, the terminal and a device asked for are there.
    let out = sh(
        &d,
        &["--device", "/dev/null:/dev/mynull", "--ulimit", "nofile=1000:2000"],
        "touch /sys/x 2>&1 | grep -c Read-only; echo x > /dev/mynull && ls -l /dev/mynull; ulimit -n; ulimit -Hn; hostname -i",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert!(lines[1].starts_with('c'), "{out}");
    assert_eq!(&lines[2..4], ["1000", "2000"], "{out}");
    assert!(lines[4].contains('.'), "{out}");
    let out = d.run_rm(&["-t", "busybox", "tty"]);
    assert!(out.trim().starts_with("/dev/pts/"), "{out}");
    let out = sh(
        &d,
        &["--read-only", "--tmpfs", "/tmp"],
        "touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp",
    );
    assert_eq!(out, "ro\ntmp");
}

#[test]
fn what_a_remapped_container_cannot_have_is_refused_in_dockers_words() {
    let d = remapped();
    for (args, words) in [
        (
            vec!["--privileged"],
            "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
        ),
        (
            vec!["--network", "host"],
            "cannot share the host's network namespace when user namespaces are enabled",
        ),
        (
            vec!["--pid", "host"],
            "cannot share the host PID namespace when user namespaces are enabled",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args.iter().copied());
        a.extend(["busybox", "true"]);
        let o = d.docker(&a);
        assert_eq!(o.code, 125, "{o:?}");
        assert!(o.stderr.contains(words), "{o:?}");
        // In the host's user namespace they are allowed.
        let mut a = vec!["run", "--rm", "--userns=host"];
        a.extend(args.iter().copied());
        a.extend(["busybox", "true"]);
        d.docker(&a).ok();
    }
}

#[test]
fn a_remap_naming_no_user_stops_the_daemon_in_dockerds_words() {
    let berthd = |spec: &str| {
        let mut c = std::process::Command::new(berth_tests::bin("berthd"));
        c.args(["--validate", "--userns-remap", spec]);
        berth_tests::run(c, None)
    };
    let o = berthd("no-such-user-here");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("Error during uid lookup for \"no-such-user-here\""),
        "{o:?}"
    );
    let o = berthd("a:b:c");
    assert!(
        o.stderr
            .contains("Invalid user/group specification in --userns-remap: \"a:b:c\""),
        "{o:?}"
    );
}

#[test]
fn a_remapped_container_shares_another_ones_namespaces_and_user_namespace() {
    let d = remapped();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let ns = "for n in user net ipc pid; do readlink /proc/self/ns/$n; done";
    let theirs = exec(&d, "donor", ns).ok().to_string();
    // dockerd's rule: sharing a namespace means sharing its owner, the user
    // namespace, too.
    let mine = sh(
        &d,
        &[
            "--network",
            "container:donor",
            "--ipc",
            "container:donor",
            "--pid",
            "container:donor",
        ],
        &format!("{ns}; id -u; ps | grep -c 'sleep 60$'"),
    );
    let lines: Vec<&str> = mine.lines().collect();
    assert_eq!(lines[..4].join("\n"), theirs.trim(), "{mine}");
    assert_eq!(&lines[4..], ["0", "1"], "{mine}");
    // Only the network shared: the rest its own, in the donor's user namespace.
    let out = sh(&d, &["--network", "container:donor"], ns);
    let lines: Vec<&str> = out.lines().collect();
    let want: Vec<&str> = theirs.lines().collect();
    assert_eq!(&lines[..2], &want[..2], "{out}");
    assert_ne!(lines[2], want[2], "{out}");
    // A donor in the host's user namespace cannot lend its namespaces.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--userns=host",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:plain",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr.contains("runs in the host's user namespace"),
        "{o:?}"
    );
    d.docker(&["rm", "-f", "donor", "plain"]).ok();
}

#[test]
fn builds_on_a_remapped_daemon_run_their_steps_remapped() {
    let d = remapped();
    let dir = d.files(
        "b",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/c echo x > /c/f && cat /proc/self/uid_map > /map && echo made > /made\nRUN --mount=type=tmpfs,target=/t touch /t/x\n",
        )],
    );
    let o = d.docker_env(
        &[("DOCKER_BUILDKIT", "0")],
        &["build", "-t", "rb", dir.to_str().unwrap()],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let out = d.run_rm(&["--userns=host", "rb", "sh", "-c", "ls -ln /made; cat /map"]);
    // The step ran remapped; what it wrote is the container root's in the image.
    assert!(out.contains(" 0        0 "), "{out}");
    assert!(out.contains(&format!(" {} ", dockremap_start())), "{out}");
}
