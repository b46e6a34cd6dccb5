//! `--userns-remap`: containers' root is an unprivileged range of the host's,
//! their image and volumes keep their owners through ID-mapped mounts.

use berth_tests::Daemon;

/// The host range dockremap got (its first /etc/subuid entry).
fn dockremap_start() -> u32 {
    let text = std::fs::read_to_string("/etc/subuid").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("dockremap:"))
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no dockremap range in /etc/subuid: {text}"))
}

#[test]
fn remapped_root_is_an_unprivileged_host_user() {
    let d = Daemon::start_with(&["--userns-remap", "default"]);
    d.load_busybox();
    let start = dockremap_start();
    let out = d.run_rm(&[
        "busybox",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ls -ln / | grep ' bin$'; echo hi > /new && cat /new",
    ]);
    eprintln!("{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &start.to_string(), "65536"], "{out}");
    assert!(out.contains(" 0 ") && out.contains("hi"), "{out}");
}
