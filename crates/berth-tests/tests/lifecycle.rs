//! pause/unpause, rename, top, container prune through the real docker CLI.

use berth_tests::{wait_until, Daemon};

#[test]
fn pause_freezes_and_unpause_thaws() {
    let d = Daemon::start();
    d.load_busybox();
    // A counter that stops moving while paused.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "tick",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.01; done",
    ])
    .ok();
    d.docker(&["pause", "tick"]).ok();
    let o = d.docker(&["ps", "--format", "{{.Status}}"]);
    assert!(o.ok().trim().ends_with("(Paused)"), "{o:?}");
    assert_eq!(
        d.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "tick"
        ])
        .ok()
        .trim(),
        "paused true"
    );
    // The kernel says the cgroup is frozen...
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "tick"])
        .ok()
        .trim()
        .to_string();
    let v1 = std::path::Path::new("/sys/fs/cgroup/freezer")
        .join(&d.cgroup_parent)
        .join(&id)
        .join("freezer.state");
    let v2 = std::path::Path::new("/sys/fs/cgroup")
        .join(&d.cgroup_parent)
        .join(&id)
        .join("cgroup.events");
    let frozen = std::fs::read_to_string(&v1)
        .map(|s| s.trim() == "FROZEN")
        .ok()
        .or_else(|| {
            std::fs::read_to_string(&v2)
                .ok()
                .map(|s| s.lines().any(|l| l == "frozen 1"))
        });
    assert_eq!(frozen, Some(true));
    // ...and the counter, read from the container's writable layer, stands still:
    // over an interval, as "nothing happened" has no event to wait for.
    let counter = d.data_root.join("containers").join(&id).join("upper/tmp/n");
    let before = std::fs::read_to_string(&counter).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        before,
        "a paused container kept running"
    );
    let o = d.docker(&["pause", "tick"]);
    assert!(o.stderr.contains("is already paused"), "{o:?}");
    assert_eq!(
        d.docker(&["ps", "--filter", "status=paused", "-q"])
            .ok()
            .lines()
            .count(),
        1
    );
    d.docker(&["unpause", "tick"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}}", "tick"])
            .ok()
            .trim(),
        "running"
    );
    let o = d.docker(&["unpause", "tick"]);
    assert!(o.stderr.contains("is not paused"), "{o:?}");
    // A paused container can still be stopped (the signal is followed by a thaw).
    d.docker(&["pause", "tick"]).ok();
    d.docker(&["stop", "-t", "1", "tick"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}}", "tick"])
            .ok()
            .trim(),
        "exited"
    );
    d.docker(&["rm", "tick"]).ok();
}

#[test]
fn rename_top_and_prune() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "old", "busybox", "sleep", "1000"])
        .ok();
    d.docker(&["rename", "old", "new"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.Name}}", "new"]).ok().trim(),
        "/new"
    );
    assert!(d
        .docker(&["inspect", "old"])
        .stderr
        .contains("No such object"));
    d.docker(&["run", "-d", "--name", "other", "busybox", "sleep", "1000"])
        .ok();
    let o = d.docker(&["rename", "new", "other"]);
    assert!(o.stderr.contains("is already in use"), "{o:?}");
    let o = d.docker(&["top", "new"]);
    let out = o.ok();
    assert!(out.lines().next().unwrap().contains("PID"), "{out}");
    assert!(out.lines().any(|l| l.ends_with("sleep 1000")), "{out}");
    assert_eq!(
        out.lines().count(),
        2,
        "only the container's process: {out}"
    );
    let o = d.docker(&["top", "new", "-o", "pid,comm"]);
    assert!(
        o.ok().lines().nth(1).unwrap().trim().ends_with("sleep"),
        "{o:?}"
    );
    d.docker(&["stop", "-t", "0", "other"]).ok();
    d.docker(&[
        "run",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big",
    ])
    .ok();
    let o = d.docker(&["container", "prune", "-f"]);
    assert!(o.ok().contains("Deleted Containers:"), "{o:?}");
    assert!(o.stdout.contains("Total reclaimed space: 100"), "{o:?}");
    assert_eq!(
        d.docker(&["ps", "-aq"]).ok().lines().count(),
        1,
        "only the running one is left"
    );
    d.docker(&["rm", "-f", "new"]).ok();
}

#[test]
fn berth_pause_rename_top() {
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&["run", "-d", "--name", "one", "busybox", "sleep", "1000"])
        .ok();
    assert_eq!(d.berth(&["pause", "one"]).ok(), "one\n");
    assert!(d.berth(&["ps"]).ok().contains("(Paused)"));
    assert_eq!(d.berth(&["unpause", "one"]).ok(), "one\n");
    d.berth(&["rename", "one", "two"]).ok();
    let o = d.berth(&["top", "two"]);
    assert!(
        o.ok().lines().nth(1).unwrap().ends_with("sleep 1000"),
        "{o:?}"
    );
    d.berth(&["rm", "-f", "two"]).ok();
}

#[test]
fn init_reaps_forwards_signals_and_is_read_only() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 4",
    ]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (
            4,
            "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 4 \n"
        )
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo x > /sbin/docker-init",
    ]);
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    // An orphan stays a zombie under a PID 1 that does not reap (the control:
    // `sleep` as PID 1); with --init the init reaps it. /forked exists once the
    // orphan has been forked.
    let orphan = "(exec sleep 0.2 &); touch /forked; exec sleep 1000";
    for (name, init) in [("noinit", false), ("withinit", true)] {
        let mut args = vec!["run", "-d", "--name", name];
        if init {
            args.push("--init");
        }
        args.extend(["busybox", "sh", "-c", orphan]);
        d.docker(&args).ok();
    }
    let ps = |c: &str| {
        d.docker(&["exec", c, "ps", "-o", "stat,args"])
            .ok()
            .to_string()
    };
    let zombie = |ps: &str| ps.lines().any(|l| l.trim_start().starts_with('Z'));
    for c in ["noinit", "withinit"] {
        wait_until("the orphan is forked", || {
            d.docker(&["exec", c, "test", "-e", "/forked"]).code == 0
        });
    }
    wait_until("a zombie under a PID 1 that does not reap", || {
        zombie(&ps("noinit"))
    });
    wait_until("the orphan reaped under --init", || {
        let p = ps("withinit");
        let orphan_alive = p.lines().any(|l| l.trim_end().ends_with(" sleep 0.2"));
        !orphan_alive && !zombie(&p)
    });
    d.docker(&["rm", "-f", "noinit", "withinit"]).ok();
    // SIGTERM reaches `sleep` through the init: no wait for the stop timeout.
    d.docker(&[
        "run", "-d", "--name", "ini", "--init", "busybox", "sleep", "1000",
    ])
    .ok();
    let t = std::time::Instant::now();
    d.docker(&["stop", "ini"]).ok();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "ini"])
            .ok()
            .trim(),
        "143"
    );
    d.docker(&["rm", "ini"]).ok();
}

#[test]
fn update_limits_and_policy_of_a_running_container() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run", "-d", "--name", "up", "-m", "32m", "busybox", "sleep", "1000",
    ])
    .ok();
    d.docker(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "-1",
        "--pids-limit",
        "7",
        "--restart",
        "always",
        "up",
    ])
    .ok();
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
        "up",
    ]);
    assert_eq!(o.ok().trim(), "67108864 7 always");
    let o = d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "up"]);
    assert!(
        o.ok().contains("/ 64MiB"),
        "the cgroup has the new limit: {o:?}"
    );
    let o = d.docker(&[
        "exec",
        "up",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
    ]);
    assert!(
        o.stderr.contains("can't fork"),
        "the new pids limit holds: {o:?}"
    );
    // This host's kernel has no block I/O weights: refused, in Docker's words.
    let o = d.docker(&["update", "--blkio-weight", "300", "up"]);
    assert!(
        o.stderr
            .contains("Your kernel does not support Block I/O weight"),
        "{o:?}"
    );
    // A real-time budget beyond the daemon's (none here): refused.
    let o = d.docker(&["update", "--cpu-rt-runtime", "100", "up"]);
    assert!(
        o.stderr
            .contains("cpu-rt-runtime 100 is more than the daemon gives its containers"),
        "{o:?}"
    );
    d.docker(&["rm", "-f", "up"]).ok();
}

#[test]
fn diff_lists_added_changed_and_deleted() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "--name",
        "df",
        "busybox",
        "sh",
        "-c",
        "mkdir /new && touch /new/f /tmp/x && echo more >> /etc/passwd && rm /bin/wget",
    ])
    .ok();
    let o = d.docker(&["diff", "df"]);
    let lines: Vec<&str> = o.ok().lines().collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "A /new",
            "A /new/f",
            "A /tmp/x",
            "C /bin",
            "C /etc",
            "C /etc/passwd",
            "C /tmp",
            "D /bin/wget"
        ]
    );
    d.docker(&["rm", "df"]).ok();
}

/// A container's file in its cgroup: v1 controller directory, or the v2 one.
fn cgroup_file(d: &Daemon, id: &str, v1: &str, v2: &str) -> String {
    let v1p = std::path::Path::new("/sys/fs/cgroup")
        .join(v1.split_once('.').unwrap().0)
        .join(&d.cgroup_parent)
        .join(id)
        .join(v1);
    let v2p = std::path::Path::new("/sys/fs/cgroup")
        .join(&d.cgroup_parent)
        .join(id)
        .join(v2);
    std::fs::read_to_string(&v1p)
        .or_else(|_| std::fs::read_to_string(&v2p))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn cpu_limits_at_create_and_update() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d
        .docker(&[
            "run",
            "-d",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok()
        .trim()
        .to_string();
    let quota = cgroup_file(&d, &id, "cpu.cfs_quota_us", "cpu.max");
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    let shares = cgroup_file(&d, &id, "cpu.shares", "cpu.weight");
    assert!(shares == "512" || shares == "20", "{shares}");
    assert_eq!(cgroup_file(&d, &id, "cpuset.cpus", "cpuset.cpus"), "0");
    d.docker(&["update", "--cpus", "1", &id]).ok();
    let quota = cgroup_file(&d, &id, "cpu.cfs_quota_us", "cpu.max");
    assert!(quota == "100000" || quota == "100000 100000", "{quota}");
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.HostConfig.NanoCpus}}", &id])
            .ok()
            .trim(),
        "1000000000"
    );
    let o = d.docker(&["run", "--rm", "--cpus", "64", "busybox", "true"]);
    assert!(o.stderr.contains("Range of CPUs is from 0.01 to"), "{o:?}");
    let o = d.berth(&["run", "--rm", "--cpuset-cpus", "0-63", "busybox", "true"]);
    assert!(
        o.stderr.contains("Requested CPUs are not available"),
        "{o:?}"
    );
    d.docker(&["rm", "-f", &id]).ok();
}

#[test]
fn memory_swap_reservation_and_cpuset_mems() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "mem",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--cpuset-mems",
        "0",
        "busybox",
        "sleep",
        "300",
    ]);
    o.ok();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "mem"])
        .ok()
        .trim()
        .to_string();
    let mib = |n: i64| (n << 20).to_string();
    assert_eq!(
        cgroup_file(&d, &id, "memory.limit_in_bytes", "memory.max"),
        mib(64)
    );
    assert_eq!(
        cgroup_file(&d, &id, "memory.soft_limit_in_bytes", "memory.low"),
        mib(32)
    );
    // v1 holds memory+swap; v2 the swap alone.
    let swap = cgroup_file(&d, &id, "memory.memsw.limit_in_bytes", "memory.swap.max");
    assert!(swap == mib(128) || swap == mib(64), "{swap}");
    assert_eq!(cgroup_file(&d, &id, "cpuset.mems", "cpuset.mems"), "0");
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}}",
        "mem",
    ]);
    assert_eq!(o.ok().trim(), format!("{} {}", mib(128), mib(32)));
    // Live: more memory and swap (the kernel's order is berth's business), then berth.
    d.docker(&["update", "-m", "96m", "--memory-swap", "256m", "mem"])
        .ok();
    assert_eq!(
        cgroup_file(&d, &id, "memory.limit_in_bytes", "memory.max"),
        mib(96)
    );
    let swap = cgroup_file(&d, &id, "memory.memsw.limit_in_bytes", "memory.swap.max");
    assert!(swap == mib(256) || swap == mib(160), "{swap}");
    d.berth(&["update", "--memory-reservation", "48m", "mem"])
        .ok();
    assert_eq!(
        cgroup_file(&d, &id, "memory.soft_limit_in_bytes", "memory.low"),
        mib(48)
    );
    // Docker's rules, with Docker's words.
    for (args, want) in [
        (
            vec!["--memory-swap", "128m"],
            "You should always set the Memory limit when using Memoryswap limit",
        ),
        (
            vec!["-m", "64m", "--memory-swap", "32m"],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (
            vec!["-m", "64m", "--memory-reservation", "128m"],
            "Minimum memory limit can not be less than memory reservation limit",
        ),
        (
            vec!["--blkio-weight", "5"],
            "Range of blkio weight is from 10 to 1000",
        ),
        (
            vec!["--cpuset-mems", "7"],
            "Requested memory nodes are not available",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args.iter().copied());
        a.extend(["busybox", "true"]);
        let o = d.docker(&a);
        assert_ne!(o.code, 0, "{args:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
    }
    d.docker(&["rm", "-f", "mem"]).ok();
}

/// Twenty concurrent `rm -f` of one running container: one removes it, the others
/// are told it is under way (or gone), as Docker answers.
#[test]
fn concurrent_removals_succeed_once() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "racer", "busybox", "sleep", "300"])
        .ok();
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| s.spawn(|| d.docker(&["rm", "-f", "racer"])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The one that removed it prints its name (the docker CLI exits 0 on "No such
    // container" with -f, so the exit code does not tell).
    let removed = outs.iter().filter(|o| o.stdout.trim() == "racer").count();
    assert_eq!(removed, 1, "{outs:?}");
    for o in outs.iter().filter(|o| o.stdout.trim() != "racer") {
        assert!(
            o.stderr
                .contains("removal of container racer is already in progress")
                || o.stderr.contains("No such container: racer"),
            "{o:?}"
        );
    }
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
}
