//! Restart policies.

use berth_tests::{wait_until as until, Daemon};

#[test]
fn on_failure_2_restarts_exactly_twice() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ])
    .ok();
    let state = || {
        d.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
            "flaky",
        ])
        .ok()
        .trim()
        .to_string()
    };
    until("two restarts and a final exit", || state() == "exited 2 3");
    // A third restart would come after the next back-off (100, 200, then 400 ms):
    // look only once that has passed, so that one too many is seen.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(state(), "exited 2 3");
    assert_eq!(d.docker(&["logs", "flaky"]).ok(), "run\nrun\nrun\n");
    d.docker(&["rm", "flaky"]).ok();
    // A clean exit is not a failure.
    d.docker(&[
        "run",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.RestartCount}}", "fine"])
            .ok()
            .trim(),
        "0"
    );
    d.docker(&["rm", "fine"]).ok();
}

#[test]
fn always_restarts_until_stopped_and_survives_a_berthd_restart() {
    let mut d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2; exit 1",
    ])
    .ok();
    let count = || {
        d.docker(&["inspect", "-f", "{{.RestartCount}}", "svc"])
            .ok()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    until("a restart", || count() >= 2);
    // A manual stop is respected.
    d.docker(&["stop", "-t", "0", "svc"]).ok();
    let c = count();
    assert!(c >= 2);
    // Looked at once a pending back-off (a few hundred ms here) would have run out:
    // the stop cancelled it, so no restart came after.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}}", "svc"])
            .ok()
            .trim(),
        "exited"
    );
    assert_eq!(count(), c, "restarted after a manual stop");
    d.docker(&["rm", "svc"]).ok();

    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--stop-timeout",
        "1",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "held",
        "--stop-timeout",
        "1",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    d.docker(&["stop", "-t", "0", "held"]).ok();
    // berthd stops its containers at shutdown; that is not a manual stop.
    assert_eq!(d.stop(), 0);
    d.spawn();
    until("web running again", || {
        d.docker(&["inspect", "-f", "{{.State.Running}}", "web"])
            .ok()
            .trim()
            == "true"
    });
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "held"])
            .ok()
            .trim(),
        "false",
        "unless-stopped stays stopped"
    );
    d.docker(&["rm", "-f", "web", "held"]).ok();
}

#[test]
fn bad_policies_are_refused() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("can't create 'AutoRemove' container with restart policy")
            || o.stderr.contains("cannot specify both --restart and --rm"),
        "{o:?}"
    );
    let o = d.berth(&["run", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(o.code, 125);
    assert!(o.stderr.contains("invalid restart policy"), "{o:?}");
}
