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

/// `GET /containers/{id}/attach/ws` through docker-py's `attach_socket(ws=True)`
/// (websocket-client over TCP): what is sent is the container's stdin, stdout and
/// stderr come back raw in binary frames, `logs=1` replays an exited container's
/// output; a request that is no WebSocket handshake is refused.
#[test]
fn attach_over_a_websocket() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with(&["-H", &tcp]);
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "ws",
        "busybox",
        "sh",
        "-c",
        "read line; echo got:$line; echo to-err >&2; sleep 2",
    ])
    .ok();
    d.docker(&["run", "--name", "done", "busybox", "echo", "earlier"])
        .ok();
    let script = format!(
        r#"
import docker, websocket
c = docker.APIClient(base_url="{tcp}")
ws = c.attach_socket("ws", params={{"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}}, ws=True)
ws.send("hello\n")
out = b""
while b"to-err" not in out:
    op, data = ws.recv_data()
    assert op == websocket.ABNF.OPCODE_BINARY, op
    out += data
print(out.decode(), end="")
ws = c.attach_socket("done", params={{"stdout": 1, "logs": 1}}, ws=True)
print(ws.recv().decode(), end="")
"#
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script);
    let o = berth_tests::run(cmd, None);
    assert_eq!(o.ok(), "got:hello\nto-err\nearlier\n");
    // Without the handshake: refused in Docker's words.
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-s",
        &format!("http://127.0.0.1:{port}/containers/ws/attach/ws?stdout=1"),
    ]);
    let o = berth_tests::run(cmd, None);
    assert!(
        o.stdout.contains("not using the websocket protocol"),
        "{o:?}"
    );
}
