//! The engine foundation driven by the real docker CLI (issue: engine foundation).

use berth_tests::Daemon;
use std::time::Instant;

#[test]
fn run_prints_and_exit_codes_pass_through() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!(o.ok(), "hello\n");
    let o = d.docker(&["run", "--name", "three", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.code, 3, "{o:?}");
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "three",
    ]);
    assert_eq!(o.ok().trim(), "exited 3");
    // --rm removed the first container; only "three" is left.
    let o = d.docker(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(o.ok().trim(), "three");
    d.docker(&["rm", "three"]).ok();
}

#[test]
fn run_attaches_only_the_streams_asked_for() {
    let d = Daemon::start();
    d.load_busybox();
    let script = "echo out; echo err >&2; exit 2";
    let o = d.docker(&["run", "--rm", "-a", "stdout", "busybox", "sh", "-c", script]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (2, "out\n", "")
    );
    let o = d.docker(&["run", "--rm", "-a", "stderr", "busybox", "sh", "-c", script]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (2, "", "err\n")
    );
    let o = d.docker_in(
        &[
            "run", "--rm", "-i", "-a", "stdin", "-a", "stdout", "busybox", "cat",
        ],
        b"piped\n",
    );
    assert_eq!(o.ok(), "piped\n");
    // berth's run takes the same flag.
    let o = d.berth(&["run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", script]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (2, "", "err\n")
    );
    let o = d.berth(&["run", "-d", "-a", "stdout", "busybox", "true"]);
    assert_eq!(o.code, 125);
    assert!(o.stderr.contains("Conflicting options: -a and -d"), "{o:?}");
    let o = d.berth(&["run", "-a", "stdmiddle", "busybox", "true"]);
    assert!(
        o.code != 0
            && o.stderr
                .contains("valid streams are STDIN, STDOUT and STDERR"),
        "{o:?}"
    );
}

#[test]
fn sigkill_reports_137() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d
        .docker(&["run", "-d", "busybox", "sleep", "1000"])
        .ok()
        .trim()
        .to_string();
    d.docker(&["kill", &id]).ok();
    assert_eq!(d.docker(&["wait", &id]).ok().trim(), "137");
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.State.ExitCode}} {{.State.Running}}",
        &id,
    ]);
    assert_eq!(o.ok().trim(), "137 false");
    // Signals by name and number, and a bad one.
    let id2 = d
        .docker(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 42' USR1; while true; do sleep 0.1; done",
        ])
        .ok()
        .trim()
        .to_string();
    d.docker(&["kill", "-s", "SIGUSR1", &id2]).ok();
    assert_eq!(d.docker(&["wait", &id2]).ok().trim(), "42");
    let o = d.docker(&["kill", "-s", "NOPE", &id2]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("is not running") || o.stderr.contains("Invalid signal"),
        "{o:?}"
    );
    d.docker(&["rm", &id, &id2]).ok();
}

#[test]
fn detached_lifecycle_stop_logs_rm() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"])
        .ok();
    let ps = d.docker(&["ps"]);
    let line = ps
        .ok()
        .lines()
        .find(|l| l.ends_with(" web"))
        .unwrap_or_else(|| panic!("web missing: {ps:?}"))
        .to_string();
    assert!(line.contains(" Up "), "{line}");

    let refused = d.docker(&["rm", "web"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("cannot remove container \"/web\": container is running: stop the container before removing or force remove"),
        "{refused:?}"
    );

    // PID 1 ignores SIGTERM (no handler), so stop must fall back to SIGKILL after 1 s.
    let t = Instant::now();
    d.docker(&["stop", "-t", "1", "web"]).ok();
    let took = t.elapsed();
    assert!(
        took.as_millis() >= 900 && took.as_secs_f64() < 2.0,
        "stop took {took:?}"
    );
    let ps = d.docker(&["ps", "-a", "--filter", "name=web"]);
    assert!(ps.ok().contains("Exited (137)"), "{ps:?}");
    d.docker(&["rm", "web"]).ok();
    let o = d.docker(&["inspect", "web"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("No such object: web"), "{o:?}");
}

#[test]
fn logs_keep_streams_apart_and_in_order() {
    let d = Daemon::start();
    d.load_busybox();
    let script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done";
    d.docker(&["run", "--name", "talk", "busybox", "sh", "-c", script])
        .ok();
    let o = d.docker(&["logs", "talk"]);
    assert_eq!(o.ok(), "out1\nout2\nout3\n");
    assert_eq!(o.stderr, "err1\nerr2\nerr3\n");
    // Two pipes have no order between them, so the tail is checked on one stream.
    d.docker(&["run", "--name", "count", "busybox", "seq", "1", "5"])
        .ok();
    assert_eq!(d.docker(&["logs", "--tail", "2", "count"]).ok(), "4\n5\n");
    assert_eq!(d.docker(&["logs", "--tail", "0", "count"]).ok(), "");
    let o = d.docker(&["logs", "-t", "talk"]);
    let first = o.ok().lines().next().unwrap_or_default().to_string();
    assert!(
        first.ends_with("Z out1") && first.starts_with("20"),
        "{first}"
    );
    let o = d.docker(&[
        "logs",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2001-01-01T00:00:00Z",
        "talk",
    ]);
    assert_eq!(o.ok(), "");
    // Follow ends when the container exits.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "follow",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 0.5; echo b",
    ])
    .ok();
    assert_eq!(d.docker(&["logs", "-f", "follow"]).ok(), "a\nb\n");
    d.docker(&["rm", "talk", "follow", "count"]).ok();
}

#[test]
fn inside_a_default_container() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d
        .docker(&[
            "create",
            "busybox",
            "sh",
            "-c",
            "echo $$; hostname; grep CapEff /proc/self/status",
        ])
        .ok()
        .trim()
        .to_string();
    d.docker(&["start", &id]).ok();
    d.docker(&["wait", &id]).ok();
    let out = d.docker(&["logs", &id]);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "1", "PID 1 is the command");
    assert_eq!(lines[1], &id[..12], "the hostname is the short id");
    assert_eq!(lines[2], "CapEff:\t00000000a80425fb");

    // /proc/kcore is masked (this host's kernel may not have it at all).
    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", "test ! -e /proc/kcore || test ! -s /proc/kcore && grep -c ' /proc/keys ' /proc/self/mountinfo"]);
    assert_eq!(o.ok().trim(), "1", "{o:?}");
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /proc/sys/kernel/hostname",
    ]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l",
    ]);
    assert_eq!(o.ok(), "0\n0\n");

    let o = d.docker(&["run", "--rm", "-u", "bob", "busybox", "id"]);
    assert_eq!(
        o.ok().trim(),
        // The primary group is among the supplementary ones, as Docker has it
        // since CVE-2022-36109 (the kernel keeps the list sorted).
        "uid=1000(bob) gid=1000(bob) groups=10(wheel),1000(bob)"
    );
    let o = d.docker(&["run", "--rm", "-u", "1000:10", "busybox", "id"]);
    assert_eq!(
        o.ok().trim(),
        "uid=1000(bob) gid=10(wheel) groups=10(wheel)"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "-u",
        "bob",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(o.ok().trim(), "CapEff:\t0000000000000000");
    let o = d.docker(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert_eq!(o.code, 125);
    assert!(
        o.stderr
            .contains("unable to find user nosuchuser: no matching entries in passwd file"),
        "{o:?}"
    );

    // Environment, working directory (created when missing), hostname, and the
    // default bridge's eth0 beside loopback.
    let o = d.docker(&[
        "run", "--rm", "-e", "A=1", "-w", "/srv/app", "-h", "box", "--domainname", "example.org", "busybox", "sh", "-c",
        "echo $A $HOSTNAME $HOME $(pwd) $(hostname) $(cat /proc/sys/kernel/domainname); ls /sys/class/net",
    ]);
    assert_eq!(o.ok(), "1 box /root /srv/app box example.org\neth0\nlo\n");
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert!(
        o.ok().lines().count() > 1,
        "host network shows the host's interfaces: {o:?}"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(o.ok(), "lo\n");
}

#[test]
fn when_pid1_exits_the_rest_dies_and_no_process_is_left() {
    let d = Daemon::start();
    d.load_busybox();
    // A background child that would outlive its parent outside a pid namespace.
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "sleep 1000 & echo started",
    ]);
    assert_eq!(o.ok(), "started\n");
    // The Daemon's drop checks that no process of this daemon is left.
}

#[test]
fn start_failures_use_dockers_exit_codes() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(o.code, 127, "{o:?}");
    assert!(
        o.stderr
            .contains("exec: \"nosuchcommand\": executable file not found in $PATH"),
        "{o:?}"
    );
    let o = d.docker(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(o.code, 126, "{o:?}");
    let o = d.docker(&["run", "--rm", "nosuchimage"]);
    assert_eq!(o.code, 125, "{o:?}");
    // The auto-remove containers whose start failed are gone.
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
    let o = d.docker(&[
        "run",
        "--rm",
        "--cpu-rt-runtime",
        "950000",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125);
    // A real-time budget beyond the daemon's (none here) is refused before anything
    // starts.
    assert!(
        o.stderr
            .contains("cpu-rt-runtime 950000 is more than the daemon gives its containers"),
        "{o:?}"
    );
}

#[test]
fn ps_filters_and_formats() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run", "-d", "--name", "a1", "-l", "role=web", "busybox", "sleep", "100",
    ])
    .ok();
    d.docker(&[
        "run", "--name", "b2", "-l", "role=db", "busybox", "sh", "-c", "exit 2",
    ]);
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = d.docker(&a).ok().lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["a1"]);
    assert_eq!(names(&["-a"]), ["a1", "b2"]);
    assert_eq!(names(&["-a", "--filter", "label=role=db"]), ["b2"]);
    assert_eq!(names(&["--filter", "status=exited"]), ["b2"]);
    assert_eq!(names(&["-a", "--filter", "exited=2"]), ["b2"]);
    assert_eq!(names(&["-a", "--filter", "ancestor=busybox"]), ["a1", "b2"]);
    assert_eq!(names(&["-a", "--filter", "name=a"]), ["a1"]);
    assert_eq!(d.docker(&["ps", "-aq"]).ok().lines().count(), 2);
    assert_eq!(
        d.docker(&["ps", "-l", "--format", "{{.Names}}"])
            .ok()
            .trim(),
        "b2"
    );
    let o = d.docker(&["ps", "--filter", "status=bogus"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("invalid filter 'status=bogus'"), "{o:?}");
    let o = d.docker(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}"]);
    let line = o.ok().trim().to_string();
    assert_eq!(line.split(' ').next().map(str::len), Some(64));
    assert!(line.ends_with("\"sleep 100\""), "{line}");
    // An argument with a space is quoted, as moby writes the command.
    d.docker(&["create", "--name", "q3", "busybox", "sh", "-c", "echo a b"])
        .ok();
    let o = d.docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        "name=q3",
        "--format",
        "{{.Command}}",
    ]);
    assert_eq!(o.ok().trim(), "\"sh -c 'echo a b'\"");
    d.docker(&["rm", "-f", "a1", "b2", "q3"]).ok();
}

#[test]
fn names_are_unique_and_checked() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["create", "--name", "dup", "busybox", "true"])
        .ok();
    let o = d.docker(&["create", "--name", "dup", "busybox", "true"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("Conflict. The container name \"/dup\" is already in use by container"),
        "{o:?}"
    );
    let o = d.docker(&["create", "--name", "bad name", "busybox", "true"]);
    assert!(
        o.stderr.contains("Invalid container name (bad name)"),
        "{o:?}"
    );
    let o = d.docker(&["start", "nosuch"]);
    assert!(o.stderr.contains("No such container: nosuch"), "{o:?}");
    d.docker(&["restart", "-t", "0", "dup"]).ok();
    d.docker(&["rm", "-f", "dup"]).ok();
}

#[test]
fn breakout_via_mknod_of_the_host_disk() {
    let d = Daemon::start();
    d.load_busybox();
    // The device of the host's root filesystem, from the mount table.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dev = mi
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .map(|f| f[2].to_string())
        .unwrap();
    let (major, minor) = dev.split_once(':').unwrap();
    let script = format!("mknod /tmp/disk b {major} {minor} && head -c 512 /tmp/disk > /dev/null");
    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", &script]);
    assert_ne!(o.code, 0, "the host disk was readable: {o:?}");
    assert!(
        o.stderr.contains("Operation not permitted") || o.stderr.contains("Permission denied"),
        "{o:?}"
    );
    // The standard nodes still work.
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c",
    ]);
    assert_eq!(o.ok(), "3\n3\n");
}

#[test]
fn resource_limits_oom_and_pids() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&[
        "run",
        "--name",
        "oom",
        "-m",
        "8m",
        "busybox",
        "sh",
        "-c",
        "head -c 64m /dev/zero | tail > /dev/null",
    ]);
    assert_eq!(o.code, 137, "{o:?}");
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.State.OOMKilled}} {{.State.ExitCode}} {{.HostConfig.Memory}}",
        "oom",
    ]);
    assert_eq!(o.ok().trim(), "true 137 8388608");
    let o = d.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait",
    ]);
    assert!(o.stderr.contains("can't fork"), "{o:?}");
    let o = d.docker(&["run", "--rm", "-m", "1m", "busybox", "true"]);
    assert_eq!(o.code, 125);
    assert!(
        o.stderr.contains("Minimum memory limit allowed is 6MB"),
        "{o:?}"
    );
    d.docker(&["rm", "oom"]).ok();
}

#[test]
fn stop_signal_timeout_and_log_driver_none() {
    let d = Daemon::start();
    d.load_busybox();
    // A container that exits 0 on SIGUSR1 only: stop with --stop-signal uses it.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "SIGUSR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' USR1; while true; do sleep 0.1; done",
    ])
    .ok();
    d.docker(&["stop", "usr1"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "usr1"])
            .ok()
            .trim(),
        "0"
    );
    d.docker(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "lost",
    ])
    .ok();
    assert_eq!(d.docker(&["wait", "quiet"]).ok().trim(), "0");
    let o = d.docker(&["logs", "quiet"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("configured logging driver does not support reading"),
        "{o:?}"
    );
    // syslog with no address: the machine's /dev/log, which this one has not.
    let o = d.docker(&["run", "--rm", "--log-driver", "syslog", "busybox", "true"]);
    assert!(
        o.stderr.contains("failed to initialize logging driver") && o.stderr.contains("/dev/log"),
        "{o:?}"
    );
    let o = d.docker(&["run", "--rm", "--log-driver", "splunk", "busybox", "true"]);
    assert!(
        o.stderr
            .contains("logger: no log driver named 'splunk' is registered"),
        "{o:?}"
    );
    // Restart keeps the id and starts the command again.
    d.docker(&["restart", "-t", "0", "quiet"]).ok();
    assert_eq!(d.docker(&["wait", "quiet"]).ok().trim(), "0");
    d.docker(&["rm", "usr1", "quiet"]).ok();
}

#[test]
fn terminal_and_open_stdin() {
    let d = Daemon::start();
    d.load_busybox();
    // -t: a pseudo-terminal, raw output (the terminal turns \n into \r\n).
    let o = d.docker(&["run", "--rm", "-t", "busybox", "sh", "-c", "tty; echo hi"]);
    assert_eq!(o.ok(), "/dev/pts/0\r\nhi\r\n");
    let o = d.berth(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo both",
    ]);
    assert_eq!(o.ok(), "both\r\n");
    // -d -i: stdin stays open, so a shell waits instead of exiting.
    d.docker(&["run", "-d", "-i", "--name", "keep", "busybox", "sh"])
        .ok();
    d.docker(&["run", "-d", "-it", "--name", "keeptty", "busybox", "sh"])
        .ok();
    let o = d.docker(&["ps", "--format", "{{.Names}} {{.State}}"]);
    let mut lines: Vec<&str> = o.ok().lines().collect();
    lines.sort();
    assert_eq!(lines, ["keep running", "keeptty running"]);
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.Config.Tty}} {{.Config.OpenStdin}}",
        "keeptty",
    ]);
    assert_eq!(o.ok().trim(), "true true");
    d.docker(&["rm", "-f", "keep", "keeptty"]).ok();
    assert_eq!(
        d.docker(&["ps", "-aq"]).ok(),
        "",
        "the --rm containers are gone"
    );
}

#[test]
fn ulimits_are_applied_and_clamped_to_the_daemons_hard_limit() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=64:128",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(o.ok(), "64\n128\n");
    let o = d.berth(&[
        "run",
        "--rm",
        "--ulimit",
        "nproc=50",
        "busybox",
        "sh",
        "-c",
        "ulimit -u",
    ]);
    assert_eq!(o.ok(), "50\n");
    // berthd inherits this test's hard limit; more than that is clamped, with a warning.
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(String::from))
        .unwrap();
    let o = d.docker(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:100000000",
        "busybox",
        "sh",
        "-c",
        "ulimit -Hn",
    ]);
    assert_eq!(o.ok().trim(), hard);
    assert!(o.stderr.contains("clamped to"), "{o:?}");
}

/// Swarm mode answers as an engine outside any swarm: 503 with Docker's words.
#[test]
fn swarm_endpoints_answer_as_an_engine_outside_a_swarm() {
    let d = Daemon::start();
    let o = d.docker(&["service", "ls"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("This node is not a swarm manager."),
        "{o:?}"
    );
    let o = d.docker(&["swarm", "leave", "--force"]);
    assert!(
        o.stderr.contains("This node is not part of a swarm"),
        "{o:?}"
    );
    for path in [
        "/swarm",
        "/services",
        "/nodes",
        "/tasks",
        "/secrets",
        "/configs",
    ] {
        let (status, _, body) = d.api("GET", path, None);
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("not a swarm manager"), "{path}: {body}");
    }
    let (status, _, _) = d.api("POST", "/swarm/leave?force=1", None);
    assert_eq!(status, 503);
}

/// What docker-compose v1 and other clients read from info and image inspect.
#[test]
fn info_and_image_inspect_carry_what_clients_read() {
    let d = Daemon::start();
    d.load_busybox();
    let info: serde_json::Value =
        serde_json::from_str(d.docker(&["info", "--format", "{{json .}}"]).ok()).unwrap();
    for key in [
        "CpuCfsQuota",
        "CpuCfsPeriod",
        "CPUShares",
        "CPUSet",
        "MemoryLimit",
        "PidsLimit",
    ] {
        assert_eq!(info[key], true, "{key}");
    }
    let v1_memory = std::path::Path::new("/sys/fs/cgroup/memory").exists();
    assert_eq!(info["OomKillDisable"], v1_memory);
    assert_eq!(info["DefaultRuntime"], "runc");
    assert!(info["Runtimes"]["runc"].is_object(), "{}", info["Runtimes"]);
    assert!(info["Plugins"]["Network"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("bridge")));
    let (status, _, body) = d.api("GET", "/v1.25/images/busybox/json", None);
    assert_eq!(status, 200);
    let img: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(img["ContainerConfig"].is_object(), "{body}");
}

/// Every `ps` filter Docker has, and `network ls` names as regular expressions.
#[test]
fn ps_and_network_filters_as_docker_reads_them() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["network", "create", "front"]).ok();
    d.docker(&["network", "create", "frontier"]).ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "-v",
        "data:/data",
        "--expose",
        "8080",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    d.docker(&["run", "-d", "--name", "webber", "busybox", "sleep", "300"])
        .ok();
    d.docker(&["run", "-d", "--name", "db", "busybox", "sleep", "300"])
        .ok();
    let names = |filter: &str| {
        let mut v: Vec<String> = d
            .docker(&["ps", "--filter", filter, "--format", "{{.Names}}"])
            .ok()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("name=^web$"), ["web"]);
    assert_eq!(names("name=^/web$"), ["web"]);
    assert_eq!(names("name=web"), ["web", "webber"]);
    assert_eq!(names("network=front"), ["web"]);
    assert_eq!(names("volume=data"), ["web"]);
    assert_eq!(names("volume=/data"), ["web"]);
    assert_eq!(names("expose=8080/tcp"), ["web"]);
    assert_eq!(names("health=none"), ["db", "web", "webber"]);
    assert_eq!(names("before=db"), ["web", "webber"]);
    assert_eq!(names("since=web"), ["db", "webber"]);
    let nets: Vec<String> = d
        .docker(&[
            "network",
            "ls",
            "--filter",
            "name=^front$",
            "--format",
            "{{.Name}}",
        ])
        .ok()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(nets, ["front"]);
    d.docker(&["rm", "-f", "web", "webber", "db"]).ok();
    d.docker(&["volume", "rm", "data"]).ok();
    d.docker(&["network", "rm", "front", "frontier"]).ok();
}

/// Requests Docker refuses as the client's mistake are 400s in Docker's words.
#[test]
fn malformed_requests_are_refused_as_docker_refuses_them() {
    let d = Daemon::start();
    // What Go's server takes and hyper alone would not: a filter typed as is
    // (`curl 'http://localhost/containers/json?filters={"status":["exited"]}'`).
    let (status, _, body) = d.api(
        "GET",
        r#"/containers/json?all=1&filters={"status":["created"]}"#,
        None,
    );
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, _, body) = d.api("GET", r#"/containers/json?filters={"bad""#, None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid filter"), "{body}");
    // A URI past what berth takes: 414 with words, not an empty answer.
    let (status, _, body) = d.api(
        "GET",
        &format!("/containers/json?x={}", "a".repeat(70_000)),
        None,
    );
    assert_eq!(status, 414, "{body}");
    assert!(body.contains("the request URI is too long"), "{body}");
    let (status, _, body) = d.api("GET", "/images/bad::name/json", None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid reference format"), "{body}");
    let long = format!("/images/{}:1/json", "a".repeat(300));
    let (status, _, body) = d.api("GET", &long, None);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("must not be more than 255 characters"),
        "{body}"
    );
    let o = d.docker(&["run", "--rm", "bad::name"]);
    assert!(o.stderr.contains("invalid reference format"), "{o:?}");
    // A body declared as something other than JSON.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    use std::io::{Read, Write};
    s.write_all(
        b"POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("Content-Type specified (text/plain) must be 'application/json'"),
        "{answer}"
    );
    // Nothing was made.
    assert_eq!(d.docker(&["volume", "ls", "-q"]).ok(), "");
}

/// `docker plugin` on an engine with no plugin installed: an empty list, "not
/// found" for a name, an install from a registry that is not there fails with
/// the reason and installs nothing (plugins.rs has the rest).
#[test]
fn plugin_commands_answer_as_an_engine_without_plugins() {
    let d = Daemon::start();
    let o = d.docker(&["plugin", "ls"]);
    assert_eq!(o.ok().lines().count(), 1, "only the header: {o:?}");
    assert!(o.stdout.starts_with("ID"), "{o:?}");
    let o = d.docker(&["plugin", "inspect", "vieux/sshfs"]);
    assert!(
        o.stderr.contains("plugin \"vieux/sshfs\" not found"),
        "{o:?}"
    );
    let o = d.docker(&["plugin", "rm", "vieux/sshfs"]);
    assert!(o.stderr.contains("not found"), "{o:?}");
    let o = d.docker(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        "localhost:5000/x/y",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("localhost:5000"), "{o:?}");
    assert_eq!(d.docker(&["plugin", "ls", "-q"]).ok(), "");
}
