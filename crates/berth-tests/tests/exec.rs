//! `docker exec`: processes joining a running container.

use berth_tests::{Daemon, PtyCommand, DOCKER};
use std::path::Path;

#[test]
fn exec_joins_the_container() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d
        .docker(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(d.docker(&["exec", "box", "echo", "hello"]).ok(), "hello\n");
    assert_eq!(d.docker(&["exec", "box", "sh", "-c", "exit 7"]).code, 7);
    assert_eq!(
        d.docker(&["exec", "-u", "bob", "box", "id", "-u"]).ok(),
        "1000\n"
    );
    // Same PID namespace (PID 1 is the container's command), hostname, capabilities.
    let o = d.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; grep CapEff /proc/self/status",
    ]);
    assert_eq!(
        o.ok(),
        format!("sleep 1000 \n{}\nCapEff:\t00000000a80425fb\n", &id[..12])
    );
    // Its files: what an exec writes, the container sees.
    d.docker(&["exec", "box", "sh", "-c", "echo shared > /tmp/f"])
        .ok();
    assert_eq!(d.docker(&["exec", "box", "cat", "/tmp/f"]).ok(), "shared\n");
    let o = d.docker(&[
        "exec",
        "-w",
        "/tmp",
        "-e",
        "X=1",
        "box",
        "sh",
        "-c",
        "pwd; echo $X $HOSTNAME",
    ]);
    assert_eq!(o.ok(), format!("/tmp\n1 {}\n", &id[..12]));
    assert_eq!(
        d.docker_in(&["exec", "-i", "box", "cat"], b"piped\n").ok(),
        "piped\n"
    );
    let o = d.docker(&["exec", "box", "nosuch"]);
    assert_eq!(o.code, 127, "{o:?}");
    assert!(
        o.stdout.contains("executable file not found in $PATH")
            || o.stderr.contains("executable file not found in $PATH"),
        "{o:?}"
    );
    // Detached: runs on its own.
    d.docker(&["exec", "-d", "box", "sh", "-c", "echo bg > /tmp/bg"])
        .ok();
    let o = d.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "while [ ! -s /tmp/bg ]; do sleep 0.05; done; cat /tmp/bg",
    ]);
    assert_eq!(o.ok(), "bg\n");
    // A stopped container refuses.
    d.docker(&["stop", "-t", "0", "box"]).ok();
    let o = d.docker(&["exec", "box", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("is not running"), "{o:?}");
    d.docker(&["rm", "box"]).ok();
}

#[test]
fn exec_it_on_a_terminal() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "term", "busybox", "sleep", "1000"])
        .ok();
    let env = vec![
        ("DOCKER_HOST", d.host()),
        (
            "DOCKER_CONFIG",
            d.root.path().join("docker-config").display().to_string(),
        ),
    ];
    let mut t = PtyCommand::spawn(
        Path::new(DOCKER),
        &["exec", "-it", "term", "sh"],
        &env,
        (40, 120),
    );
    t.expect("# ");
    t.send(b"echo $((6*7)); stty size; tty\r");
    t.expect("42");
    t.expect("40 120");
    t.expect("/dev/pts/");
    t.send(b"exit 3\r");
    assert_eq!(t.wait(), 3);
    d.docker(&["rm", "-f", "term"]).ok();
}

#[test]
fn berth_exec_and_attach() {
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    assert_eq!(d.berth(&["exec", "box", "echo", "hi"]).ok(), "hi\n");
    assert_eq!(d.berth(&["exec", "box", "sh", "-c", "exit 9"]).code, 9);
    assert_eq!(
        d.berth(&["exec", "-u", "1000:10", "box", "id", "-g"]).ok(),
        "10\n"
    );
    assert_eq!(
        d.berth_in(&["exec", "-i", "box", "wc", "-c"], b"12345")
            .ok()
            .trim(),
        "5"
    );
    assert_eq!(d.berth(&["exec", "box", "nosuch"]).code, 127);
    d.berth(&["exec", "-d", "box", "touch", "/tmp/x"]).ok();
    // attach: a container with an open stdin, fed from ours; its exit is ours.
    d.berth(&[
        "run",
        "-d",
        "-i",
        "--name",
        "cat",
        "busybox",
        "sh",
        "-c",
        "read x; echo got $x; exit 4",
    ])
    .ok();
    let o = d.berth_in(&["attach", "cat"], b"line\n");
    assert_eq!((o.code, o.stdout.as_str()), (4, "got line\n"));
    let o = d.berth(&["attach", "cat"]);
    assert!(
        o.stderr
            .contains("You cannot attach to a stopped container"),
        "{o:?}"
    );
    let env = vec![("BERTH_HOST", d.host()), ("DOCKER_HOST", String::new())];
    let mut t = PtyCommand::spawn(
        &berth_tests::bin("berth"),
        &["exec", "-it", "box", "sh"],
        &env,
        (20, 70),
    );
    t.expect("# ");
    t.send(b"stty size\r");
    t.expect("20 70");
    t.send(b"exit 2\r");
    assert_eq!(t.wait(), 2);
    d.berth(&["rm", "-f", "box", "cat"]).ok();
}

#[test]
fn berth_start_attached() {
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&[
        "create",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 6",
    ])
    .ok();
    // Attached before the start: nothing printed is missed, and its exit is ours.
    let o = d.berth(&["start", "-a", "once"]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (6, "out\n", "err\n")
    );
    // A second start runs it again, attached again; the docker CLI's too.
    assert_eq!(d.berth(&["start", "-a", "once"]).code, 6);
    let o = d.docker(&["start", "-a", "once"]);
    assert_eq!((o.code, o.stdout.as_str()), (6, "out\n"), "{o:?}");
    d.berth(&[
        "create",
        "-i",
        "--name",
        "reader",
        "busybox",
        "sh",
        "-c",
        "read x; echo got $x",
    ])
    .ok();
    let o = d.berth_in(&["start", "-a", "-i", "reader"], b"it\n");
    assert_eq!((o.code, o.stdout.as_str()), (0, "got it\n"));
    let o = d.berth(&["start", "-a", "once", "reader"]);
    assert!(
        o.code != 0 && o.stderr.contains("cannot start and attach multiple"),
        "{o:?}"
    );
    let o = d.berth(&["start", "-a", "nosuch"]);
    assert!(
        o.code != 0 && o.stderr.contains("No such container"),
        "{o:?}"
    );
    d.berth(&["rm", "-f", "once", "reader"]).ok();
}

#[test]
fn berth_run_proxies_signals_to_the_container() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let d = Daemon::start();
    d.load_busybox();
    let run = |extra: &[&str], name: &str| {
        let mut args = vec!["run", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "busybox",
            "sh",
            "-c",
            "trap 'echo got; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
        ]);
        let mut child = Command::new(berth_tests::bin("berth"))
            .args(&args)
            .env("BERTH_HOST", d.host())
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        (child, out)
    };
    // Proxied: the container's trap runs, and its exit is berth's.
    let (mut child, mut out) = run(&[], "sp");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "got\n");
    assert_eq!(child.wait().unwrap().code(), Some(3));
    // --sig-proxy=false: berth itself dies of the signal, the container runs on.
    let (mut child, _out) = run(&["--sig-proxy=false"], "nosp");
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    let o = d.docker(&["inspect", "-f", "{{.State.Running}}", "nosp"]);
    assert_eq!(o.ok().trim(), "true");
    d.docker(&["rm", "-f", "sp", "nosp"]).ok();
}

#[test]
fn privileged_exec_gets_every_capability_the_daemon_has() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "pv", "busybox", "sleep", "1000"])
        .ok();
    let mine = std::fs::read_to_string("/proc/self/status").unwrap();
    let prm = mine
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap()
        .trim()
        .to_string();
    let o = d.docker(&[
        "exec",
        "--privileged",
        "pv",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(o.ok().trim(), format!("CapEff:\t{prm}"));
    let o = d.berth(&[
        "exec",
        "--privileged",
        "pv",
        "grep",
        "CapBnd",
        "/proc/self/status",
    ]);
    assert_eq!(o.ok().trim(), format!("CapBnd:\t{prm}"));
    // Without it, Docker's default set.
    assert_eq!(
        d.docker(&["exec", "pv", "grep", "CapEff", "/proc/self/status"])
            .ok()
            .trim(),
        "CapEff:\t00000000a80425fb"
    );
    d.docker(&["rm", "-f", "pv"]).ok();
}

/// Right after a detached start answers, inspect shows the exec running, with
/// its pid, and no exit code yet.
#[test]
fn exec_inspect_right_after_a_detached_start() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "host", "busybox", "sleep", "300"])
        .ok();
    let (status, _, body) = d.api(
        "POST",
        "/containers/host/exec",
        Some(r#"{"Cmd": ["sleep", "30"]}"#),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = d.api(
        "POST",
        &format!("/exec/{id}/start"),
        Some(r#"{"Detach": true}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = d.api("GET", &format!("/exec/{id}/json"), None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Running"], true, "{body}");
    assert!(v["Pid"].as_i64().unwrap() > 0, "{body}");
    assert!(v["ExitCode"].is_null(), "{body}");
    d.docker(&["rm", "-f", "host"]).ok();
}
