//! berthd killed with SIGKILL at random moments while containers are being run and
//! removed: afterwards every record agrees with the kernel, no container runs
//! twice, no address is held twice, and nothing is left over.

use berth_tests::Daemon;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One request on the daemon's socket; None when the daemon is not there (or died
/// during the request).
fn request(sock: &Path, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = std::os::unix::net::UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, rest) = resp.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    // Chunked bodies (lists) come as one chunk here; take the JSON between.
    let body = match (rest.find(['[', '{']), rest.rfind([']', '}'])) {
        (Some(a), Some(b)) if b >= a => rest[a..=b].to_string(),
        _ => rest.to_string(),
    };
    Some((status, body))
}

/// Pids in each of the daemon's container cgroups, from /proc/*/cgroup.
fn processes_by_container(cgroup_parent: &str) -> HashMap<String, HashSet<i32>> {
    let mut out: HashMap<String, HashSet<i32>> = HashMap::new();
    let needle = format!("/{cgroup_parent}/");
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        for line in text.lines() {
            if let Some(at) = line.find(&needle) {
                let id: String = line[at + needle.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect();
                if id.len() == 64 {
                    out.entry(id).or_default().insert(pid);
                }
            }
        }
    }
    out
}

/// Repeats a request until berthd answers it.
fn retry(mut f: impl FnMut() -> Option<(u16, String)>) -> (u16, String) {
    for _ in 0..600 {
        if let Some(r) = f() {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("berthd did not come back");
}

fn rand_below(n: u64) -> u64 {
    rand::random::<u64>() % n
}

/// Checks that berthd's view and the kernel's agree; returns how many run.
fn check_consistency(d: &Daemon, round: usize) -> usize {
    let sock = d.socket.clone();
    // Short-lived --rm containers finish and go; wait for those to settle.
    berth_tests::wait_until("short-lived containers to finish", || {
        let (_, body) =
            request(&sock, "GET", "/containers/json?all=1", "").expect("berthd answers");
        let list: Vec<Value> = serde_json::from_str(&body).expect("list");
        !list.iter().any(|c| {
            c["State"] == "running"
                && c["Command"]
                    .as_str()
                    .is_some_and(|s| s.contains("sleep 0."))
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let (_, body) = request(&sock, "GET", "/containers/json?all=1", "").expect("berthd answers");
    let list: Vec<Value> = serde_json::from_str(&body).expect("list");
    let procs = processes_by_container(&d.cgroup_parent);
    let mut running = 0;
    let mut addresses: BTreeMap<String, String> = BTreeMap::new();
    let listed: HashSet<String> = list
        .iter()
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect();
    for c in &list {
        let id = c["Id"].as_str().unwrap();
        let state = c["State"].as_str().unwrap();
        let n = procs.get(id).map_or(0, HashSet::len);
        let (_, body) =
            request(&sock, "GET", &format!("/containers/{id}/json"), "").expect("inspect");
        let inspect: Value = serde_json::from_str(&body).expect("inspect json");
        if state == "running" {
            running += 1;
            assert_eq!(
                n, 1,
                "round {round}: running container {id} has {n} processes (a second copy?)"
            );
            let pid = inspect["State"]["Pid"].as_i64().unwrap();
            assert!(
                procs[id].contains(&(pid as i32)),
                "round {round}: {id}'s pid {pid} is not in its cgroup"
            );
            let ip = inspect["NetworkSettings"]["IPAddress"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(!ip.is_empty(), "round {round}: running {id} has no address");
            if let Some(other) = addresses.insert(ip.clone(), id.to_string()) {
                panic!("round {round}: {ip} is held by {id} and {other}");
            }
            // The kernel agrees: the address is on the container's eth0.
            let o = std::process::Command::new("nsenter")
                .arg(format!("--net=/proc/{pid}/ns/net"))
                .args(["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
                .output()
                .expect("nsenter");
            let shown = String::from_utf8_lossy(&o.stdout);
            assert!(
                shown.contains(&format!(" {ip}/")),
                "round {round}: {id} has {shown}, record says {ip}"
            );
        } else {
            assert_eq!(n, 0, "round {round}: {state} container {id} has processes");
            assert!(
                !(state == "exited" && inspect["HostConfig"]["AutoRemove"] == true),
                "round {round}: --rm container {id} was left exited"
            );
        }
    }
    for (id, pids) in &procs {
        assert!(
            listed.contains(id),
            "round {round}: orphan processes {pids:?} of unknown container {id}"
        );
    }
    running
}

#[test]
fn kill9_during_runs_and_removals_leaves_records_agreeing_with_the_kernel() {
    let d = Daemon::start();
    d.load_busybox();
    let sock: PathBuf = d.socket.clone();
    let d = Mutex::new(d);
    let mut kills = 0;
    for round in 0..5 {
        let done = AtomicBool::new(false);
        let (runs, removals) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|w| {
                    let sock = &sock;
                    s.spawn(move || {
                        let (mut runs, mut removals) = (0, 0);
                        let mut names = Vec::new();
                        for i in 0..50 {
                            let name = format!("r{round}-{w}-{i}");
                            // A third are short --rm containers.
                            let short = i % 3 == 2;
                            let body = if short {
                                format!(r#"{{"Image":"busybox","Cmd":["sleep","0.{}"],"HostConfig":{{"AutoRemove":true}}}}"#, 1 + rand_below(5))
                            } else {
                                r#"{"Image":"busybox","Cmd":["sleep","1000"]}"#.to_string()
                            };
                            // Each request is retried until berthd answers it: a
                            // create whose answer was lost is found by its name.
                            let create = format!("/containers/create?name={name}");
                            let status = retry(|| request(sock, "POST", &create, &body)).0;
                            assert!(status == 201 || status == 409, "create {name}: {status}");
                            let start = format!("/containers/{name}/start");
                            let (status, body) = retry(|| request(sock, "POST", &start, ""));
                            // 404: a short --rm one that already ran and went; 409:
                            // one whose removal is under way (a start retried after
                            // its answer was lost), as Docker answers it.
                            let going = short
                                && status == 409
                                && body.contains("is marked for removal and cannot be started");
                            assert!(
                                [204, 304, 404].contains(&status) || going,
                                "start {name}: {status} {body}"
                            );
                            runs += 1;
                            names.push(name);
                            if i % 2 == 1 {
                                let victim = names.remove(rand_below(names.len() as u64) as usize);
                                let rm = format!("/containers/{victim}?force=1");
                                let (status, body) = retry(|| request(sock, "DELETE", &rm, ""));
                                // 409: its --rm removal is under way (Docker's
                                // answer too); it goes by that removal.
                                assert!(
                                    status == 204
                                        || status == 404
                                        || (status == 409 && body.contains("already in progress")),
                                    "rm {victim}: {status} {body}"
                                );
                                removals += 1;
                            }
                        }
                        (runs, removals)
                    })
                })
                .collect();
            let killer = s.spawn(|| {
                let mut n = 0;
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50 + rand_below(450)));
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    let mut g = d.lock().unwrap();
                    g.kill9();
                    g.spawn();
                    n += 1;
                }
                n
            });
            let totals = workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            done.store(true, Ordering::SeqCst);
            kills += killer.join().expect("killer");
            totals
        });
        let g = d.lock().unwrap();
        let running = check_consistency(&g, round);
        assert_eq!((runs, removals), (100, 50));
        eprintln!("round {round}: {runs} runs and {removals} removals, {running} running, {kills} kills so far");
        // Clear the round: everything goes, and nothing of it stays in the kernel.
        let (_, body) = request(&sock, "GET", "/containers/json?all=1", "").expect("list");
        let list: Vec<Value> = serde_json::from_str(&body).expect("list");
        for c in list {
            let id = c["Id"].as_str().unwrap();
            let (status, body) = request(
                &sock,
                "DELETE",
                &format!("/containers/{id}?force=1&v=1"),
                "",
            )
            .expect("rm");
            assert!(status == 204 || status == 404, "rm {id}: {status} {body}");
        }
        berth_tests::wait_until("every container process to be gone", || {
            processes_by_container(&g.cgroup_parent).is_empty()
        });
    }
    assert!(kills >= 10, "berthd was killed {kills} times");
}
