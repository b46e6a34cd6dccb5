//! Interactive containers through the real docker CLI on a real terminal: run -it,
//! detach keys, attach, stdin through pipes, window size.

use berth_tests::{Daemon, PtyCommand, DOCKER};
use std::path::Path;

fn env(d: &Daemon) -> Vec<(&'static str, String)> {
    vec![
        ("DOCKER_HOST", d.host()),
        (
            "DOCKER_CONFIG",
            d.root.path().join("docker-config").display().to_string(),
        ),
    ]
}

#[test]
fn run_it_detach_attach_and_exit_code() {
    let d = Daemon::start();
    d.load_busybox();
    let mut t = PtyCommand::spawn(
        Path::new(DOCKER),
        &["run", "-it", "--name", "it", "busybox", "sh"],
        &env(&d),
        (30, 100),
    );
    t.expect("# ");
    t.send(b"echo $((6*7))\r");
    t.expect("42");
    t.send(b"stty size\r");
    t.expect("30 100");
    // ctrl-p ctrl-q: the client goes, the container stays.
    t.send(b"\x10\x11");
    assert_eq!(t.wait(), 0);
    let o = d.docker(&["inspect", "-f", "{{.State.Running}}", "it"]);
    assert_eq!(o.ok().trim(), "true");

    let mut t = PtyCommand::spawn(Path::new(DOCKER), &["attach", "it"], &env(&d), (30, 100));
    t.send(b"echo again\r");
    t.expect("again");
    t.send(b"exit 5\r");
    assert_eq!(t.wait(), 5);
    let o = d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "it"]);
    assert_eq!(o.ok().trim(), "5");
    d.docker(&["rm", "it"]).ok();
}

#[test]
fn custom_detach_keys() {
    let d = Daemon::start();
    d.load_busybox();
    let mut t = PtyCommand::spawn(
        Path::new(DOCKER),
        &[
            "run",
            "-it",
            "--detach-keys",
            "ctrl-a,x",
            "--name",
            "dk",
            "busybox",
            "sh",
        ],
        &env(&d),
        (24, 80),
    );
    t.expect("# ");
    t.send(b"\x01x");
    assert_eq!(t.wait(), 0);
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "dk"])
            .ok()
            .trim(),
        "true"
    );
    d.docker(&["rm", "-f", "dk"]).ok();
}

#[test]
fn stdin_through_pipes() {
    let d = Daemon::start();
    d.load_busybox();
    assert_eq!(
        d.docker_in(&["run", "-i", "--rm", "busybox", "cat"], b"hello\n")
            .ok(),
        "hello\n"
    );
    assert_eq!(
        d.berth_in(&["run", "-i", "--rm", "busybox", "cat"], b"hello\n")
            .ok(),
        "hello\n"
    );
    let big: Vec<u8> = (0..200_000).map(|i| b'a' + (i % 26) as u8).collect();
    let o = d.docker_in(&["run", "-i", "--rm", "busybox", "wc", "-c"], &big);
    assert_eq!(o.ok().trim(), "200000");
    let o = d.docker_in(
        &["run", "-i", "--rm", "busybox", "sh"],
        b"echo $((6*7)); exit 5\n",
    );
    assert_eq!((o.code, o.stdout.as_str()), (5, "42\n"));
    // Without -i, stdin is /dev/null: the input is not seen.
    let o = d.docker_in(&["run", "--rm", "busybox", "cat"], b"ignored\n");
    assert_eq!(o.ok(), "");
}
