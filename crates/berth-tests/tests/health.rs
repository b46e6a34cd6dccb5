//! Healthchecks.

use berth_tests::{wait_until as until, Daemon};

#[test]
fn a_failing_check_turns_the_container_unhealthy() {
    let d = Daemon::start();
    d.load_busybox();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 1000",
    ])
    .ok();
    let status = || {
        d.docker(&["inspect", "-f", "{{.State.Health.Status}}", "hc"])
            .ok()
            .trim()
            .to_string()
    };
    until("healthy", || status() == "healthy");
    assert!(d
        .docker(&["ps", "--format", "{{.Status}}"])
        .ok()
        .contains("(healthy)"));
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{(index .State.Health.Log 0).ExitCode}} {{(index .State.Health.Log 0).Output}}",
        "hc",
    ]);
    assert_eq!(o.ok().trim(), "0 fine");
    d.docker(&["exec", "hc", "rm", "/tmp/ok"]).ok();
    until("unhealthy", || status() == "unhealthy");
    assert!(d
        .docker(&["ps", "--format", "{{.Status}}"])
        .ok()
        .contains("(unhealthy)"));
    assert!(
        d.docker(&["inspect", "-f", "{{.State.Health.FailingStreak}}", "hc"])
            .ok()
            .trim()
            .parse::<i64>()
            .unwrap()
            >= 2
    );
    let until_t = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let o = d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until_t,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(o.ok(), "health_status: healthy\nhealth_status: unhealthy\n");
    d.docker(&["rm", "-f", "hc"]).ok();
}

#[test]
fn no_healthcheck_and_berth_flags() {
    let d = Daemon::start();
    d.load_busybox();
    d.berth(&[
        "run",
        "-d",
        "--name",
        "bh",
        "--health-cmd",
        "true",
        "--health-interval",
        "100ms",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    until("healthy", || {
        d.docker(&["inspect", "-f", "{{.State.Health.Status}}", "bh"])
            .ok()
            .trim()
            == "healthy"
    });
    d.docker(&[
        "run",
        "-d",
        "--name",
        "nh",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Health}}", "nh"])
            .ok()
            .trim(),
        "<nil>"
    );
    d.docker(&["rm", "-f", "bh", "nh"]).ok();
}
