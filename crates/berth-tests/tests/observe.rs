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

#[test]
fn log_rotation_keeps_three_files_while_logs_follow() {
    let d = Daemon::start();
    d.load_busybox();
    let script = "i=0; while [ $i -lt 60 ]; do echo line $i; i=$((i+1)); sleep 0.02; done";
    d.docker(&[
        "create",
        "--name",
        "rot",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        script,
    ])
    .ok();
    d.docker(&["start", "rot"]).ok();
    // Follow while it writes (about a second), from the beginning.
    let follow = std::process::Command::new(berth_tests::DOCKER)
        .args(["logs", "-f", "rot"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = follow.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let want: Vec<String> = (0..60).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want, "logs -f followed through the rotations");
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "rot"])
        .ok()
        .trim()
        .to_string();
    let logs: Vec<_> = std::fs::read_dir(d.data_root.join("containers").join(&id))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .collect();
    assert_eq!(logs.len(), 3, "at most three files: {logs:?}");
    for f in &logs {
        assert!(f.metadata().unwrap().len() <= 1024);
    }
    // docker logs reads across the files that are left: the newest lines, in order.
    let all = d.docker(&["logs", "rot"]);
    let got: Vec<&str> = all.ok().lines().collect();
    assert!(got.len() < 60 && got.last() == Some(&"line 59"), "{got:?}");
    let first: usize = got[0].trim_start_matches("line ").parse().unwrap();
    assert_eq!(
        got,
        (first..60).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    let o = d.docker(&["run", "--rm", "--log-opt", "max-file=2", "busybox", "true"]);
    assert!(
        o.stderr
            .contains("max-file cannot be greater than 1 when max-size is not set"),
        "{o:?}"
    );
    let o = d.docker(&["run", "--rm", "--log-opt", "color=blue", "busybox", "true"]);
    assert!(o.stderr.contains("unknown log opt 'color'"), "{o:?}");
    d.docker(&["rm", "rot"]).ok();
}

#[test]
fn compressed_rotation_and_the_local_driver() {
    let d = Daemon::start();
    d.load_busybox();
    let script = "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done";
    d.docker(&[
        "run",
        "--name",
        "gz",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=4",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        script,
    ])
    .ok();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "gz"])
        .ok()
        .trim()
        .to_string();
    let mut files: Vec<String> = std::fs::read_dir(d.data_root.join("containers").join(&id))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-json.log"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        files.iter().filter(|f| f.ends_with(".gz")).count() == 3,
        "{files:?}"
    );
    // docker logs reads the compressed files too: the newest lines, in order, to the end.
    let o = d.docker(&["logs", "gz"]);
    let got: Vec<&str> = o.ok().lines().collect();
    let first: usize = got[0].trim_start_matches("line ").parse().unwrap();
    assert!(first > 0 && first < 190, "{first}");
    assert_eq!(
        got,
        (first..200)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
    );
    // The local driver: rotated and compressed by default, read by docker logs.
    d.docker(&[
        "run",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "busybox",
        "echo",
        "kept locally",
    ])
    .ok();
    assert_eq!(d.docker(&["logs", "loc"]).ok(), "kept locally\n");
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "loc"])
            .ok()
            .trim(),
        "local"
    );
    d.docker(&["rm", "gz", "loc"]).ok();
}

/// What happens to networks and volumes as containers come and go shows in the
/// event stream, as Docker reports it.
#[test]
fn network_and_volume_events_of_a_container_run() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["network", "create", "evnet"]).ok();
    let since = d
        .docker(&["version", "-f", "{{.Server.Version}}"])
        .ok()
        .to_string();
    let _ = since;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.docker(&[
        "run",
        "--rm",
        "--name",
        "evc",
        "--network",
        "evnet",
        "-v",
        "evvol:/data",
        "busybox",
        "true",
    ])
    .ok();
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = d
        .docker(&[
            "events",
            "--since",
            &start,
            "--until",
            &until,
            "--filter",
            "type=network",
            "--filter",
            "type=volume",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .ok()
        .to_string();
    let lines: Vec<&str> = events.lines().collect();
    let pos = |want: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(want))
            .unwrap_or_else(|| panic!("no {want:?} in {events}"))
    };
    assert!(pos("volume create") < pos("volume mount"));
    assert!(pos("volume mount") < pos("volume unmount"));
    assert!(pos("network connect evnet") < pos("network disconnect evnet"));
    d.docker(&["volume", "rm", "evvol"]).ok();
    d.docker(&["network", "rm", "evnet"]).ok();
}
