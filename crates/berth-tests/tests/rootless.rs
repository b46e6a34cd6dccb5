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
    assert!(info.stdout.contains(" none vfs"), "{}", info.stdout);
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
