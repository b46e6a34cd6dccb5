//! docker events and docker stats.

use berth_tests::Daemon;

#[test]
fn events_since_until_and_filters() {
    let d = Daemon::start();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    d.load_busybox();
    d.docker(&[
        "run", "--name", "ev", "-l", "app=demo", "busybox", "sh", "-c", "exit 3",
    ])
    .ok_or_code(3);
    d.docker(&["tag", "busybox", "bb:x"]).ok();
    d.docker(&["rm", "ev"]).ok();
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let (since, until) = (t0.to_string(), t1.to_string());
    let o = d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(o.ok(), "create\nstart\ndie\ndestroy\n");
    let o = d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}} {{.Actor.Attributes.name}} {{.Actor.Attributes.app}}",
    ]);
    assert_eq!(o.ok(), "3 ev demo\n");
    let o = d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(o.ok(), "load busybox:latest\ntag bb:x\n");
    let o = d.docker(&["events", "--filter", "bogus=1", "--until", &until]);
    assert!(o.stderr.contains("invalid filter 'bogus'"), "{o:?}");
}

#[test]
fn stats_show_limits_and_usage() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while true; do :; done",
    ])
    .ok();
    let o = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.PIDs}}",
    ]);
    let mut lines: Vec<&str> = o.ok().lines().collect();
    lines.sort();
    assert!(
        lines[1].starts_with("lim|") && lines[1].contains("/ 64MiB|1"),
        "{lines:?}"
    );
    let o = d.docker(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy"]);
    let cpu: f64 = o.ok().trim().trim_end_matches('%').parse().unwrap();
    assert!(cpu > 20.0, "a busy loop shows its CPU: {cpu}");
    // The API: one sample with a precpu, and the pids limit.
    let (status, _, body) = d.api("GET", "/containers/lim/stats?stream=false", None);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["memory_stats"]["limit"], 64 << 20);
    assert_eq!(v["pids_stats"]["limit"], 20);
    assert_eq!(v["name"], "/lim");
    d.docker(&["rm", "-f", "lim", "busy"]).ok();
}
