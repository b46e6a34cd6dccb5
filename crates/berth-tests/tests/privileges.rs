//! `docker run` options about privileges, namespaces, devices and kernel knobs,
//! each checked for its effect from inside the container or from the host.

use berth_tests::Daemon;

/// Every capability berthd can hand out: the kernel's (bits 0..=cap_last_cap),
/// within what this process (root, like berthd) holds.
fn full_mask() -> u64 {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ((1u64 << (last + 1)) - 1) & berth_tests::own_capabilities()
}

fn cap_eff(d: &Daemon, args: &[&str]) -> u64 {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend(["busybox", "sh", "-c", "grep CapEff /proc/self/status"]);
    let out = d.docker(&a).ok().to_string();
    let hex = out.trim().rsplit('\t').next().unwrap().to_string();
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|_| panic!("CapEff in {out:?}"))
}

/// The namespace of kind `ns` of this (host) process, as readlink shows it.
fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .unwrap()
        .display()
        .to_string()
}

fn inside(d: &Daemon, args: &[&str], script: &str) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend(["busybox", "sh", "-c", script]);
    d.docker(&a).ok().trim().to_string()
}

#[test]
fn capabilities_are_added_dropped_and_all_when_privileged() {
    let d = Daemon::start();
    d.load_busybox();
    const NET_ADMIN: u64 = 1 << 12;
    const CHOWN: u64 = 1 << 0;
    // Docker's default set, for comparison: 0xa80425fb.
    assert_eq!(cap_eff(&d, &[]), 0xa80425fb);
    assert_eq!(cap_eff(&d, &["--cap-drop", "ALL"]), 0);
    let c = cap_eff(&d, &["--cap-add", "NET_ADMIN", "--cap-drop", "chown"]);
    assert_eq!(c, (0xa80425fb | NET_ADMIN) & !CHOWN);
    assert_eq!(
        cap_eff(&d, &["--cap-drop", "ALL", "--cap-add", "cap_net_admin"]),
        NET_ADMIN
    );
    assert_eq!(cap_eff(&d, &["--cap-add", "ALL"]), full_mask());
    assert_eq!(cap_eff(&d, &["--privileged"]), full_mask());
    // An exec gets the container's set.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "capped",
        "--cap-drop",
        "ALL",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let o = d.docker(&["exec", "capped", "grep", "CapEff", "/proc/self/status"]);
    assert!(o.ok().contains("0000000000000000"), "{o:?}");
    d.docker(&["rm", "-f", "capped"]).ok();
    let o = d.docker(&["run", "--rm", "--cap-add", "NOPE", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("unknown capability: \"CAP_NOPE\""),
        "{o:?}"
    );
    // berth's CLI has the same flags.
    let o = d.berth(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(o.ok().contains("0000000000000000"), "{o:?}");
}

#[test]
fn privileged_has_host_devices_writable_sys_and_nothing_masked() {
    let d = Daemon::start();
    d.load_busybox();
    // A host device that no default container has (a terminal of the host).
    let host_dev = ["/dev/tty0", "/dev/tty1", "/dev/loop-control", "/dev/kmsg"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("the host has a tty, loop-control or kmsg device");
    let test = format!("test -e {host_dev} && echo yes || echo no");
    assert_eq!(inside(&d, &[], &test), "no");
    assert_eq!(inside(&d, &["--privileged"], &test), "yes");
    let sys = "grep ' /sys sysfs ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1";
    assert_eq!(inside(&d, &[], sys), "ro");
    assert_eq!(inside(&d, &["--privileged"], sys), "rw");
    // /proc/interrupts is masked (an empty /dev/null bind) by default only.
    assert!(std::fs::metadata("/proc/interrupts").is_ok());
    let kcore = "test -n \"$(head -c 1 /proc/interrupts)\" && echo visible || echo masked";
    assert_eq!(inside(&d, &[], kcore), "masked");
    assert_eq!(inside(&d, &["--privileged"], kcore), "visible");
    let seccomp = "grep Seccomp: /proc/self/status | cut -f2";
    assert_eq!(inside(&d, &[], seccomp), "2");
    assert_eq!(inside(&d, &["--privileged"], seccomp), "0");
}

#[test]
fn namespaces_of_the_host_and_of_other_containers() {
    let d = Daemon::start();
    d.load_busybox();
    let ns =
        |args: &[&str], kind: &str| inside(&d, args, &format!("readlink /proc/self/ns/{kind}"));
    // Private by default.
    for kind in ["pid", "ipc", "uts", "cgroup"] {
        assert_ne!(ns(&[], kind), host_ns(kind), "{kind}");
    }
    assert_eq!(ns(&["--pid", "host"], "pid"), host_ns("pid"));
    assert_eq!(ns(&["--ipc", "host"], "ipc"), host_ns("ipc"));
    assert_eq!(ns(&["--uts", "host"], "uts"), host_ns("uts"));
    assert_eq!(ns(&["--cgroupns", "host"], "cgroup"), host_ns("cgroup"));
    assert_ne!(ns(&["--cgroupns", "private"], "cgroup"), host_ns("cgroup"));
    // --pid host sees the host's PID 1.
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert_eq!(
        inside(&d, &["--pid", "host"], "cat /proc/1/comm"),
        host_init.trim()
    );
    // --uts host has the host's name and does not change it.
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(inside(&d, &["--uts", "host"], "hostname"), host_name.trim());
    let o = d.docker(&[
        "run", "--rm", "--uts", "host", "-h", "other", "busybox", "true",
    ]);
    assert!(
        o.stderr
            .contains("conflicting options: hostname and the UTS mode"),
        "{o:?}"
    );
    // Another container's PID and IPC namespaces.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "owner",
        "--ipc",
        "shareable",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let owner = |kind: &str| {
        d.docker(&["exec", "owner", "readlink", &format!("/proc/1/ns/{kind}")])
            .ok()
            .trim()
            .to_string()
    };
    assert_eq!(ns(&["--ipc", "container:owner"], "ipc"), owner("ipc"));
    assert_eq!(ns(&["--pid", "container:owner"], "pid"), owner("pid"));
    assert_eq!(
        inside(
            &d,
            &["--pid", "container:owner"],
            "cat /proc/1/cmdline | tr '\\0' ' '"
        ),
        "sleep 300"
    );
    // --ipc none: no /dev/shm at all.
    assert_eq!(
        inside(
            &d,
            &["--ipc", "none"],
            "grep -c ' /dev/shm ' /proc/mounts || true"
        ),
        "0"
    );
    d.docker(&["stop", "-t", "0", "owner"]).ok();
    let o = d.docker(&["run", "--rm", "--pid", "container:owner", "busybox", "true"]);
    assert!(
        o.stderr
            .contains("cannot join PID of a non running container"),
        "{o:?}"
    );
    d.docker(&["rm", "owner"]).ok();
    // The docker CLI refuses this itself; berthd refuses it too.
    let o = d.berth(&["run", "--rm", "--pid", "bogus", "busybox", "true"]);
    assert!(o.stderr.contains("invalid PID mode: bogus"), "{o:?}");
}

#[test]
fn kernel_knobs_shm_and_oom() {
    let d = Daemon::start();
    d.load_busybox();
    assert_eq!(
        inside(
            &d,
            &["--sysctl", "net.ipv4.ip_forward=1"],
            "cat /proc/sys/net/ipv4/ip_forward"
        ),
        "1"
    );
    assert_eq!(
        inside(
            &d,
            &["--sysctl", "kernel.shmmax=123456789"],
            "cat /proc/sys/kernel/shmmax"
        ),
        "123456789"
    );
    // The host's value is untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax")
            .unwrap()
            .trim(),
        "123456789"
    );
    // The docker CLI refuses these itself; berthd refuses them too.
    let o = d.berth(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.panic=1",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr.contains("sysctl \"kernel.panic\" is not allowed"),
        "{o:?}"
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr.contains("not allowed in host network namespace"),
        "{o:?}"
    );
    // /dev/shm: 64 MiB by default, --shm-size otherwise (df's 1K blocks).
    let shm = "df -k /dev/shm | tail -1 | awk '{print $2}'";
    assert_eq!(inside(&d, &[], shm), "65536");
    assert_eq!(inside(&d, &["--shm-size", "128m"], shm), "131072");
    // Inspect shows the size each got, as Docker records it.
    d.docker(&["create", "--name", "shm", "busybox", "true"])
        .ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.HostConfig.ShmSize}}", "shm"])
            .ok()
            .trim(),
        "67108864"
    );
    d.docker(&["rm", "shm"]).ok();
    assert_eq!(
        inside(&d, &["--oom-score-adj", "500"], "cat /proc/1/oom_score_adj"),
        "500"
    );
    let o = d.docker(&["run", "--rm", "--oom-score-adj", "1001", "busybox", "true"]);
    assert_ne!(o.code, 0);
    // --oom-kill-disable, seen in the container's v1 memory cgroup.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "nokill",
        "-m",
        "64m",
        "--oom-kill-disable",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "nokill"])
        .ok()
        .trim()
        .to_string();
    let ctl = format!(
        "/sys/fs/cgroup/memory/{}/{id}/memory.oom_control",
        d.cgroup_parent
    );
    let text = std::fs::read_to_string(&ctl).unwrap_or_else(|e| panic!("{ctl}: {e}"));
    assert!(text.contains("oom_kill_disable 1"), "{text}");
    d.docker(&["rm", "-f", "nokill"]).ok();
}

#[test]
fn devices_and_device_cgroup_rules() {
    let d = Daemon::start();
    d.load_busybox();
    assert_eq!(
        inside(
            &d,
            &["--device", "/dev/zero:/dev/myzero"],
            "head -c 4 /dev/myzero | wc -c"
        ),
        "4"
    );
    // A node gets its host node's owner and mode (one made by the test: /dev/zero's
    // numbers, owned by 1234:5678, mode 0640).
    let node = d.root.path().join("zero-node");
    let st = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "5"])
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::chown(&node, Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    assert_eq!(
        inside(
            &d,
            &["--device", &format!("{}:/dev/owned", node.display())],
            "stat -c '%u:%g %a %t:%T' /dev/owned"
        ),
        "1234:5678 640 1:5"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/nosuchdevice",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr.contains(
            "error gathering device information while adding custom device \"/dev/nosuchdevice\""
        ),
        "{o:?}"
    );
    // A node the defaults do not allow (loop-control, 10:237) cannot be opened,
    // even when made inside; a rule allows it.
    let open = "mknod /tmp/lc c 10 237 && (exec 3</tmp/lc) 2>&1; true";
    let denied = inside(&d, &[], open);
    assert!(denied.contains("Operation not permitted"), "{denied}");
    let allowed = inside(&d, &["--device-cgroup-rule", "c 10:237 rwm"], open);
    assert!(!allowed.contains("Operation not permitted"), "{allowed}");
    // The same rules are an eBPF program on the container's cgroup2 directory:
    // the only restriction on a pure v2 host (berth-runtime's
    // tests/device_program.rs checks the program alone), a second one here.
    d.docker(&["run", "-d", "--name", "devs", "busybox", "sleep", "60"])
        .ok();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "devs"])
        .ok()
        .trim()
        .to_string();
    let unified = berth_tests::cgroup_dirs(&d.cgroup_parent)
        .into_iter()
        .find(|p| p.join("cgroup.controllers").exists())
        .expect("a cgroup2 directory for the containers")
        .join(&id);
    let cg = std::fs::File::open(&unified).unwrap();
    assert_eq!(
        berth_runtime::sys::device_programs(std::os::fd::AsFd::as_fd(&cg)).unwrap(),
        1,
        "{}",
        unified.display()
    );
    d.docker(&["rm", "-f", "devs"]).ok();
    // The docker CLI checks the format itself; berthd checks it too.
    let o = d.berth(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "c 10 rwm",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr.contains("invalid device cgroup rule format"),
        "{o:?}"
    );
}

#[test]
fn group_add_runtime_and_modes_that_change_nothing() {
    let d = Daemon::start();
    d.load_busybox();
    // Named in the image's /etc/group, or a number; the primary group is among
    // the supplementary ones (CVE-2022-36109).
    let groups = inside(
        &d,
        &["-u", "bob", "--group-add", "nogroup", "--group-add", "4242"],
        "cat /proc/self/status | grep ^Groups: | cut -f2",
    );
    let mut g: Vec<&str> = groups.split_whitespace().collect();
    g.sort_unstable();
    assert_eq!(g, ["10", "1000", "4242", "65534"], "{groups}");
    let groups = inside(
        &d,
        &["-u", "4321"],
        "grep ^Groups: /proc/self/status | cut -f2",
    );
    assert_eq!(groups.trim(), "0");
    let o = d.docker(&["run", "--rm", "--group-add", "nosuch", "busybox", "true"]);
    assert!(o.stderr.contains("unable to find group nosuch"), "{o:?}");
    for (flag, value) in [
        ("--runtime", "runc"),
        ("--userns", "host"),
        ("--ipc", "private"),
        ("--isolation", "default"),
    ] {
        d.docker(&["run", "--rm", flag, value, "busybox", "true"])
            .ok();
    }
    let o = d.docker(&["run", "--rm", "--runtime", "kata", "busybox", "true"]);
    assert!(
        o.stderr.contains("unknown or invalid runtime name: kata"),
        "{o:?}"
    );
}

#[test]
fn cgroup_parent_per_container() {
    let d = Daemon::start();
    d.load_busybox();
    let parent = format!("berth-test-own-{}", std::process::id());
    d.docker(&[
        "run",
        "-d",
        "--name",
        "parented",
        "--cgroup-parent",
        &parent,
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", "parented"])
        .ok()
        .trim()
        .to_string();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "parented"])
        .ok()
        .trim()
        .to_string();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines().any(|l| l.ends_with(&format!("/{parent}/{id}"))),
        "{cg}"
    );
    d.docker(&["rm", "-f", "parented"]).ok();
    // The parent is the test's to remove (berth removes only the container's).
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(&parent));
    }
    let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{parent}"));
}

/// CVE-2022-36109: a process whose primary group is not among its supplementary
/// groups can drop that group (newgrp, a setgid program) and read files denied to
/// it. Docker, and berth, keep the primary group in the list, for an image user
/// and for a bare uid (primary group 0).
#[test]
fn cve_2022_36109_the_primary_group_stays_a_supplementary_group() {
    let d = Daemon::start();
    d.load_busybox();
    let groups = |user: &str| {
        inside(
            &d,
            &["-u", user],
            "grep ^Groups: /proc/self/status | cut -f2",
        )
        .split_whitespace()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    assert_eq!(groups("4321"), ["0"]);
    assert_eq!(groups("1000:4242"), ["4242"]);
    assert!(groups("bob").contains(&"1000".to_string()));
    // An exec too.
    d.docker(&[
        "run", "-d", "--name", "gx", "-u", "4321", "busybox", "sleep", "300",
    ])
    .ok();
    let o = d.docker(&["exec", "gx", "grep", "^Groups:", "/proc/self/status"]);
    assert_eq!(o.ok().trim(), "Groups:\t0");
    d.docker(&["rm", "-f", "gx"]).ok();
}

#[test]
fn the_containers_own_cgroups_are_visible_read_only() {
    let d = Daemon::start();
    d.load_busybox();
    let v2_only = !std::path::Path::new("/sys/fs/cgroup/memory").exists();
    let limit = if v2_only {
        "cat /sys/fs/cgroup/memory.max"
    } else {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    // The container's own limit, as programs that size themselves read it.
    assert_eq!(inside(&d, &["-m", "64m"], limit), "67108864");
    let o = inside(&d, &[], "touch /sys/fs/cgroup/x 2>&1; true");
    assert!(o.contains("Read-only file system"), "{o}");
    // Its own cgroup is the root it sees.
    assert_eq!(
        inside(&d, &[], "cut -d: -f3 /proc/self/cgroup | sort -u"),
        "/"
    );
}

/// A block device of the host, for the per-device I/O options.
fn host_block_device() -> (String, String) {
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dev = format!("/dev/{name}");
        if let Ok(nums) = std::fs::read_to_string(e.path().join("dev")) {
            if std::path::Path::new(&dev).exists() {
                return (dev, nums.trim().to_string());
            }
        }
    }
    panic!("this host has no block device in /dev");
}

#[test]
fn swappiness_block_io_limits_and_what_linux_discards() {
    let d = Daemon::start();
    d.load_busybox();
    let (dev, nums) = host_block_device();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "limited",
        "--memory-swappiness",
        "10",
        "--device-read-bps",
        &format!("{dev}:1mb"),
        "--device-write-iops",
        &format!("{dev}:100"),
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "limited"])
        .ok()
        .trim()
        .to_string();
    let v1 = |ctl: &str, file: &str| {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{ctl}/{}/{id}/{file}",
            d.cgroup_parent
        ))
        .unwrap_or_else(|e| panic!("{ctl}/{file}: {e}"))
    };
    assert_eq!(v1("memory", "memory.swappiness").trim(), "10");
    assert!(
        v1("blkio", "blkio.throttle.read_bps_device").contains(&format!("{nums} 1048576")),
        "{}",
        v1("blkio", "blkio.throttle.read_bps_device")
    );
    assert!(v1("blkio", "blkio.throttle.write_iops_device").contains(&format!("{nums} 100")));
    d.docker(&["rm", "-f", "limited"]).ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "--memory-swappiness",
        "101",
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    let o = d.berth(&[
        "run",
        "--rm",
        "--device-read-bps",
        "/dev/zero:1mb",
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("not a block device"), "{o:?}");
    // Options Docker accepts on Linux and discards, each with its warning.
    let (status, _, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"KernelMemory": 10485760, "CpuCount": 2, "CpuPercent": 50, "IOMaximumBandwidth": 1000}}"#),
    );
    assert_eq!(status, 201, "{body}");
    for w in [
        "Specifying a kernel memory limit is deprecated",
        "linux does not support CPU count. Count discarded.",
        "linux does not support CPU percent. Percent discarded.",
        "linux does not support IO maximum bandwidth. IOMaximumBandwidth discarded.",
    ] {
        assert!(body.contains(w), "{w}: {body}");
    }
    let id: serde_json::Value = serde_json::from_str(&body).unwrap();
    d.docker(&["rm", id["Id"].as_str().unwrap()]).ok();
}

#[test]
fn a_terminal_is_the_containers_console() {
    let d = Daemon::start();
    d.load_busybox();
    // With -t, /dev/console is the container's terminal (pts 0 of its own devpts).
    let o = d.docker(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "stat -c %t:%T /dev/console; tty",
    ]);
    assert_eq!(o.ok(), "88:0\r\n/dev/pts/0\r\n");
    // An exec's terminal is its own; the console stays the container's.
    d.docker(&["run", "-d", "-t", "--name", "tc", "busybox", "sleep", "300"])
        .ok();
    let o = d.docker(&[
        "exec",
        "-t",
        "tc",
        "sh",
        "-c",
        "tty; stat -c %T /dev/console",
    ]);
    assert_eq!(o.ok(), "/dev/pts/1\r\n0\r\n");
    d.docker(&["rm", "-f", "tc"]).ok();
    // Without one, there is no console at all.
    assert_eq!(
        inside(&d, &[], "test -e /dev/console && echo yes || echo no"),
        "no"
    );
}

#[test]
fn gpus_are_refused_as_docker_refuses_them_without_a_gpu_runtime() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&["run", "--rm", "--gpus", "all", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("could not select device driver \"\" with capabilities: [[gpu]]"),
        "{o:?}"
    );
}

/// `--cpu-rt-runtime`/`--cpu-rt-period`: the daemon gives its parent cgroup a
/// real-time budget (dockerd's flag), a container's own comes out of it and lets
/// it schedule real-time tasks (with CAP_SYS_NICE); without a budget it cannot;
/// more than the daemon's, or a runtime beyond the period, is refused.
#[test]
fn real_time_cpu_budgets() {
    let d = Daemon::start_with(&["--cpu-rt-runtime", "95000"]);
    d.load_busybox();
    let parent = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/cpu/{}/cpu.rt_runtime_us",
        d.cgroup_parent
    ))
    .unwrap();
    assert_eq!(parent.trim(), "95000");
    // The container's cgroup has its budget; the kernel then lets its tasks be
    // real-time (asked from the host with util-linux's chrt: busybox has none).
    let chrt = |name: &str| {
        let pid = d
            .docker(&["inspect", "-f", "{{.State.Pid}}", name])
            .ok()
            .trim()
            .to_string();
        std::process::Command::new("chrt")
            .args(["-f", "-p", "5", &pid])
            .output()
            .unwrap()
            .status
            .success()
    };
    d.docker(&[
        "run",
        "-d",
        "--name",
        "rt",
        "--cpu-rt-runtime",
        "20000",
        "--cpu-rt-period",
        "1000000",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu/cpu.rt_runtime_us; sleep 300",
    ])
    .ok();
    berth_tests::wait_until("the budget in the log", || {
        d.docker(&["logs", "rt"]).stdout == "20000\n"
    });
    assert!(
        chrt("rt"),
        "a container with a budget can run real-time tasks"
    );
    d.docker(&["run", "-d", "--name", "nort", "busybox", "sleep", "300"])
        .ok();
    assert!(!chrt("nort"), "without a budget it cannot");
    // `docker update` changes a running container's budget, within the daemon's.
    d.docker(&["update", "--cpu-rt-runtime", "30000", "rt"])
        .ok();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "rt"])
        .ok()
        .trim()
        .to_string();
    let own = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/cpu/{}/{id}/cpu.rt_runtime_us",
        d.cgroup_parent
    ))
    .unwrap();
    assert_eq!(own.trim(), "30000");
    let o = d.docker(&["update", "--cpu-rt-runtime", "500000", "rt"]);
    assert!(o.stderr.contains("more than the daemon gives"), "{o:?}");
    d.docker(&["rm", "-f", "rt", "nort"]).ok();
    for (args, want) in [
        (
            &["--cpu-rt-runtime", "200000"][..],
            "more than the daemon gives",
        ),
        (
            &["--cpu-rt-runtime", "2000", "--cpu-rt-period", "1000"][..],
            "cpu-rt-runtime cannot be higher than cpu-rt-period",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend(["busybox", "true"]);
        let o = d.docker(&a);
        assert_ne!(o.code, 0, "{args:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
    }
}

/// `--ipc shareable` and `--ipc container:X`: the joiner shares the donor's
/// /dev/shm (POSIX shared memory) with its IPC namespace, both ways, with the
/// donor's size; a donor that is not shareable is refused in Docker's words; the
/// shared tmpfs goes when the donor stops.
#[test]
fn ipc_container_shares_the_donors_dev_shm() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d
        .docker(&[
            "run",
            "-d",
            "--name",
            "donor",
            "--ipc",
            "shareable",
            "--shm-size",
            "32m",
            "busybox",
            "sh",
            "-c",
            "echo from-donor > /dev/shm/d; sleep 300",
        ])
        .ok()
        .trim()
        .to_string();
    berth_tests::wait_until("the donor's file", || {
        d.docker(&["exec", "donor", "cat", "/dev/shm/d"]).stdout == "from-donor\n"
    });
    let out = inside(
        &d,
        &["--ipc", "container:donor"],
        "cat /dev/shm/d; echo from-joiner > /dev/shm/j; df -k /dev/shm | tail -1 | awk '{print $2}'",
    );
    assert_eq!(out, "from-donor\n32768");
    assert_eq!(
        d.docker(&["exec", "donor", "cat", "/dev/shm/j"]).ok(),
        "from-joiner\n"
    );
    let shm = d.data_root.join("containers").join(&id).join("mounts/shm");
    let mounts = || std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        mounts().contains(&shm.display().to_string()),
        "mounted while it runs"
    );
    // A private donor cannot be joined.
    d.docker(&["run", "-d", "--name", "private", "busybox", "sleep", "300"])
        .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:private",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr
            .contains("non-shareable IPC (hint: use IpcMode:shareable for the donor container)"),
        "{o:?}"
    );
    d.docker(&["stop", "-t", "0", "donor"]).ok();
    assert!(
        !mounts().contains(&shm.display().to_string()),
        "gone with the donor"
    );
    d.docker(&["rm", "-f", "donor", "private"]).ok();
}

#[test]
fn dockers_default_network_sysctls_unless_the_container_sets_them() {
    let d = Daemon::start();
    d.load_busybox();
    let knobs =
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range";
    // Any port without CAP_NET_BIND_SERVICE, ping sockets without CAP_NET_RAW.
    let out = inside(&d, &["-u", "1000"], knobs);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "2147483647"],
        "{out}"
    );
    let out = inside(
        &d,
        &["-u", "1000"],
        "nc -l -p 80 & sleep 0.3; kill $! && echo bound",
    );
    assert!(out.ends_with("bound"), "{out}");
    // The container's own value wins.
    let out = inside(
        &d,
        &["--sysctl", "net.ipv4.ip_unprivileged_port_start=1024"],
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    assert_eq!(out, "1024");
}
