//! What a container cannot reach: each published escape class that applies to
//! berth, tried from inside an ordinary container as an attacker would, named after
//! its CVE or class. Each attack is also shown to work where the defence is
//! switched off, or against a planted leak, so that a broken defence fails here.

use berth_tests::Daemon;
use std::path::{Path, PathBuf};
use std::process::Command;

const EPERM: i32 = 1;

/// A host file the attacks look for: reaching it from a container is an escape.
struct Marker {
    dir: tempfile::TempDir,
}

impl Marker {
    fn new() -> Marker {
        let dir = tempfile::Builder::new()
            .prefix("berth-escape-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        std::fs::write(dir.path().join("secret"), "host secret\n").expect("marker");
        Marker { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("secret")
    }
}

fn shim_binary() -> PathBuf {
    berth_tests::bin("berth-shim")
}

fn sha(path: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cve_2024_21626_workdir_through_a_leaked_fd() {
    let d = Daemon::start();
    d.load_busybox();
    // docker run -w: every descriptor number a leak could have had.
    for fd in 3..=12 {
        let w = format!("/proc/self/fd/{fd}");
        let o = d.docker(&[
            "run",
            "--rm",
            "-w",
            &w,
            "busybox",
            "sh",
            "-c",
            "pwd; cat ../../../../../../etc/hostname",
        ]);
        assert_ne!(o.code, 0, "-w {w} ran: {o:?}");
        assert!(
            o.stderr.contains("working directory") || o.stderr.contains(&w),
            "{o:?}"
        );
    }
    // The other magic links are refused too (runc would allow them: they cannot
    // lead outside, but nothing needs them).
    let o = d.docker(&["run", "--rm", "-w", "/proc/1/root", "busybox", "pwd"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("too many levels of symbolic links"),
        "{o:?}"
    );

    // docker exec -w.
    d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    for fd in 3..=12 {
        let w = format!("/proc/self/fd/{fd}");
        let o = d.docker(&["exec", "-w", &w, "box", "pwd"]);
        assert_ne!(o.code, 0, "exec -w {w} ran: {o:?}");
    }
    // A working directory that is an ordinary directory still works.
    assert_eq!(
        d.docker(&["exec", "-w", "/tmp", "box", "pwd"]).ok(),
        "/tmp\n"
    );

    // An image whose WORKDIR is a leaked descriptor.
    d.docker(&[
        "commit",
        "--change",
        "WORKDIR /proc/self/fd/8",
        "box",
        "evil-workdir",
    ])
    .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "evil-workdir",
        "sh",
        "-c",
        "pwd; ls ../../../../",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("/proc/self/fd/8"), "{o:?}");
    d.docker(&["rm", "-f", "box"]).ok();
}

/// A script for busybox sh that looks, over and over, at every process of its
/// container for anything of the host: a descriptor, working directory or root
/// through which the marker file is reachable, or an executable that is berth's.
fn scanner(marker: &Path) -> String {
    let m = marker.display();
    format!(
        r#"
: > /tmp/hits
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    for f in $d/fd/* $d/cwd $d/root; do
      if [ -e "$f{m}" ] || [ -e "$f/../../../../../../../../../..{m}" ]; then echo "HIT $f" >> /tmp/hits; fi
    done
    l=$(readlink $d/exe 2>/dev/null)
    case "$l" in *berth*) echo "EXE $d $l" >> /tmp/hits;; esac
  done
  : $((n=n+1))
  echo $n > /tmp/rounds
done
touch /tmp/done
exec sleep 1000
"#
    )
}

#[test]
fn exec_window_proc_scanner_sees_nothing_of_the_host() {
    let d = Daemon::start();
    d.load_busybox();
    let marker = Marker::new();
    let script = scanner(&marker.path());

    // The control: with the marker's directory bound in, the scanner reports it
    // (so a scanner that saw nothing because it looked wrong would fail here).
    let dir = marker.dir.path().display().to_string();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "control",
        "-v",
        &format!("{dir}:{dir}"),
        "-w",
        &dir,
        "busybox",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    berth_tests::wait_until("the control scanner to report", || {
        d.docker(&["exec", "control", "cat", "/tmp/hits"])
            .stdout
            .contains("HIT")
    });
    d.docker(&["rm", "-f", "control"]).ok();

    // The real run: 200 execs and 20 healthchecks while the scanner runs.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--health-cmd",
        "echo x >> /tmp/hc",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1000",
        "busybox",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    let execs = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    for _ in 0..100 {
                        if d.docker(&["exec", "victim", "true"]).code == 0 {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .sum::<i32>()
    });
    assert_eq!(execs, 200);
    // At least 20 healthchecks ran meanwhile (each one an exec of its own).
    berth_tests::wait_until("20 healthchecks", || {
        let o = d.docker(&["exec", "victim", "sh", "-c", "wc -l < /tmp/hc"]);
        o.stdout.trim().parse::<u32>().unwrap_or(0) >= 20
    });
    d.docker(&["exec", "victim", "touch", "/tmp/stop"]).ok();
    berth_tests::wait_until("the scanner to stop", || {
        d.docker(&["exec", "victim", "test", "-e", "/tmp/done"])
            .code
            == 0
    });
    let rounds: u32 = d
        .docker(&["exec", "victim", "cat", "/tmp/rounds"])
        .ok()
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(rounds > 3, "the scanner ran {rounds} rounds");
    let hits = d
        .docker(&["exec", "victim", "cat", "/tmp/hits"])
        .ok()
        .to_string();
    assert_eq!(
        hits, "",
        "the container saw the host through an exec's helper"
    );
    d.docker(&["rm", "-f", "victim"]).ok();
}

#[test]
fn cve_2019_5736_the_shim_binary_cannot_be_overwritten() {
    let d = Daemon::start();
    d.load_busybox();
    let before = sha(&shim_binary());
    let pid: i32 = {
        d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
            .ok();
        d.docker(&["inspect", "-f", "{{.State.Pid}}", "box"])
            .ok()
            .trim()
            .parse()
            .expect("pid")
    };
    // The shim (the container's parent) runs from a sealed memfd, not the file.
    let ppid = berth_tests::parent_pid(pid);
    let exe = std::fs::read_link(format!("/proc/{ppid}/exe")).expect("shim exe");
    assert!(
        exe.to_string_lossy().starts_with("/memfd:berth-shim"),
        "{exe:?}"
    );
    // Sealed: not even root on the host can write through the link.
    let err = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/{ppid}/exe"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
        .unwrap_err();
    // ETXTBSY while it runs; the seals (EPERM) forever after, for root too
    // (berth_runtime::sealed's own test).
    assert!(
        matches!(err.raw_os_error(), Some(EPERM) | Some(26)),
        "{err}"
    );

    // The attack: a program of the container whose interpreter is /proc/self/exe
    // makes `docker exec` run the exec helper's own binary inside the container;
    // an attacker loop meanwhile tries to write to every berth executable it sees.
    let attacker = r#"
: > /tmp/log
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    l=$(readlink $d/exe 2>/dev/null)
    case "$l" in *berth*)
      echo "SAW $l" >> /tmp/log
      if printf x 2>/dev/null >> $d/exe; then echo "WROTE $l" >> /tmp/log; fi;;
    esac
  done
done
touch /tmp/done
"#;
    d.docker(&["exec", "-d", "box", "sh", "-c", attacker]).ok();
    d.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "printf '#!/proc/self/exe\\n' > /evil; chmod +x /evil",
    ])
    .ok();
    for _ in 0..50 {
        let o = d.docker(&["exec", "box", "/evil"]);
        // berth-shim ran as the container's program and refused its arguments.
        assert_ne!(o.code, 0, "{o:?}");
    }
    let o = d.docker(&["exec", "box", "/proc/self/exe"]);
    assert!(o.stderr.contains("usage: berth-shim"), "{o:?}");
    d.docker(&["exec", "box", "touch", "/tmp/stop"]).ok();
    berth_tests::wait_until("the attacker to stop", || {
        d.docker(&["exec", "box", "test", "-e", "/tmp/done"]).code == 0
    });
    let log = d
        .docker(&["exec", "box", "cat", "/tmp/log"])
        .ok()
        .to_string();
    assert!(!log.contains("WROTE"), "{log}");
    for line in log.lines() {
        assert!(
            line.contains("/memfd:berth-shim"),
            "the container saw a berth binary on disk: {line}"
        );
    }
    assert_eq!(sha(&shim_binary()), before, "the host's berth-shim changed");
    d.docker(&["rm", "-f", "box"]).ok();
}

#[test]
fn inherited_descriptors_never_reach_containers() {
    let marker = Marker::new();
    let dir = marker.dir.path().display().to_string();
    // berthd's parent leaves a directory on fd 9 and files on 10 and 251.
    let d = Daemon::start_wrapped(&format!(
        "exec 9<'{dir}' 10<'{}' 251<'{}'",
        marker.path().display(),
        marker.path().display()
    ));
    d.load_busybox();
    // The control: a process that does inherit them shows them (the probe works).
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 9<'{dir}'; ls /proc/self/fd/9/"))
        .output()
        .expect("sh");
    assert!(String::from_utf8_lossy(&o.stdout).contains("secret"));

    // The descriptors of a child of the container's shell (the shell's own
    // listing would show the directory it reads).
    let list = "sleep 5 & ls -1 /proc/$!/fd | tr '\\n' ' '";
    assert_eq!(
        d.docker(&["run", "--rm", "busybox", "sh", "-c", list]).ok(),
        "0 1 2 "
    );
    let o = d.docker(&["run", "--rm", "-t", "busybox", "sh", "-c", list]);
    assert_eq!(o.ok().trim(), "0 1 2");
    d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    assert_eq!(d.docker(&["exec", "box", "sh", "-c", list]).ok(), "0 1 2 ");
    assert_eq!(
        d.docker(&["exec", "box", "sh", "-c", "ls -1 /proc/1/fd | tr '\\n' ' '"])
            .ok(),
        "0 1 2 "
    );
    // Neither does berthd's own shim hold them.
    let pid: i32 = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", "box"])
        .ok()
        .trim()
        .parse()
        .unwrap();
    let ppid = berth_tests::parent_pid(pid);
    for fd in std::fs::read_dir(format!("/proc/{ppid}/fd"))
        .expect("shim fds")
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        assert!(
            !target.starts_with(marker.dir.path()),
            "the shim holds {target:?}"
        );
    }
    d.docker(&["rm", "-f", "box"]).ok();
}

/// A static program that tries the calls a container must not make and prints
/// each one's result: `name errno` (0 for success).
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/perf_event.h>
#include <fcntl.h>

static void report(const char *name, long r) { printf("%s %d\n", name, r < 0 ? errno : 0); }

int main(void) {
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2 /* user keyring */, 0));
    report("add_key", syscall(SYS_add_key, "user", "berth-escape", "x", 1, -2));
    report("unshare_user", unshare(CLONE_NEWUSER));
    struct perf_event_attr a; memset(&a, 0, sizeof a); a.size = sizeof a;
    a.type = PERF_TYPE_SOFTWARE; a.config = PERF_COUNT_SW_CPU_CLOCK;
    report("perf_event_open", syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    report("mount", mount("none", "/mnt", "tmpfs", 0, 0));
    report("swapoff", syscall(SYS_swapoff, "/nonexistent"));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
    char handle[128] = {0};
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
    report("bpf", syscall(SYS_bpf, 0, 0, 0));
    report("clone_newns", syscall(SYS_unshare, CLONE_NEWNS));
    return 0;
}
"#;

fn build_probe(dir: &Path) -> PathBuf {
    let src = dir.join("probe.c");
    let bin = dir.join("probe");
    std::fs::write(&src, PROBE_C).expect("probe source");
    let o = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc (the tests need it to build their probe)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    bin
}

fn probe_results(out: &str) -> std::collections::BTreeMap<String, i32> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().parse().expect("errno")))
        .collect()
}

#[test]
fn seccomp_default_profile_refuses_escape_syscalls() {
    let d = Daemon::start();
    d.load_busybox();
    let work = tempfile::tempdir().expect("temp dir");
    let probe = build_probe(work.path());
    let bind = format!("{}:/probe:ro", probe.display());

    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "busybox",
            "grep",
            "Seccomp:",
            "/proc/self/status"
        ])
        .ok(),
        "Seccomp:\t2\n"
    );
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "grep",
            "Seccomp:",
            "/proc/self/status"
        ])
        .ok(),
        "Seccomp:\t0\n"
    );
    let got = probe_results(
        d.docker(&["run", "--rm", "-v", &bind, "busybox", "/probe"])
            .ok(),
    );
    assert_eq!(got.len(), 10, "{got:?}");
    for (name, errno) in &got {
        assert_eq!(*errno, EPERM, "{name} under the default profile: {got:?}");
    }
    // Unconfined, the same calls reach the kernel: some succeed, others fail for
    // reasons of their own (the capabilities), so the probe can tell.
    let open = probe_results(
        d.docker(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "-v",
            &bind,
            "busybox",
            "/probe",
        ])
        .ok(),
    );
    assert_eq!(open["unshare_user"], 0, "{open:?}");
    assert_ne!(open["keyctl"], EPERM, "{open:?}");
    assert_ne!(open["bpf"], EPERM, "{open:?}");

    // The exec of a container gets its filter too.
    d.docker(&[
        "run", "-d", "--name", "box", "-v", &bind, "busybox", "sleep", "1000",
    ])
    .ok();
    let got = probe_results(d.docker(&["exec", "box", "/probe"]).ok());
    assert!(got.values().all(|e| *e == EPERM), "{got:?}");
    assert_eq!(
        d.docker(&["exec", "box", "grep", "Seccomp:", "/proc/self/status"])
            .ok(),
        "Seccomp:\t2\n"
    );
    d.docker(&["rm", "-f", "box"]).ok();

    // docker info lists it.
    let info = d
        .docker(&["info", "--format", "{{json .SecurityOptions}}"])
        .ok()
        .to_string();
    assert!(info.contains("name=seccomp,profile=builtin"), "{info}");
}

#[test]
fn seccomp_custom_profile_and_no_new_privileges() {
    let d = Daemon::start();
    d.load_busybox();
    let work = tempfile::tempdir().expect("temp dir");
    let profile = work.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("Operation not permitted"), "{o:?}");
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "touch",
            "/x"
        ])
        .code,
        0
    );
    // berth's CLI reads the file the same way.
    let o = d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert_eq!(o.code, 1, "{o:?}");

    // A broken profile is refused at create: by the daemon when it is JSON but
    // not a profile, by the CLIs when it is not JSON.
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#).unwrap();
    let o = d.docker(&["create", "--security-opt", &opt, "busybox", "true"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("seccomp profile: unknown action \"SCMP_ACT_MAYBE\""),
        "{o:?}"
    );
    let (status, _, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"SecurityOpt": ["seccomp={ no"]}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("decoding seccomp profile failed"), "{body}");
    std::fs::write(&profile, "{ not json").unwrap();
    let o = d.berth(&["create", "--security-opt", &opt, "busybox", "true"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("compacting json for seccomp profile"),
        "{o:?}"
    );
    let o = d.docker(&[
        "create",
        "--security-opt",
        "apparmor=foo",
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    // Refused where the kernel has no AppArmor (this machine), not yet applied
    // where it has: never ignored.
    assert!(
        o.stderr.contains(
            "AppArmor is not enabled on this host, so --security-opt apparmor=foo cannot be applied"
        ) || o.stderr.contains("berth cannot apply AppArmor settings yet"),
        "{o:?}"
    );

    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "grep",
            "NoNewPrivs",
            "/proc/self/status"
        ])
        .ok(),
        "NoNewPrivs:\t1\n"
    );
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "busybox",
            "grep",
            "NoNewPrivs",
            "/proc/self/status"
        ])
        .ok(),
        "NoNewPrivs:\t0\n"
    );
    assert_eq!(
        d.docker(&["ps", "-aq"]).ok(),
        "",
        "nothing is left of the refused creates"
    );
}

#[test]
fn cve_2022_0492_cgroup_release_agent_is_out_of_reach() {
    let d = Daemon::start();
    d.load_busybox();
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /tmp/cg; mount -t cgroup -o rdma cgroup /tmp/cg && echo MOUNTED; \
         unshare -UrmC sh -c 'mount -t cgroup -o rdma cgroup /tmp/cg && echo MOUNTED2'; \
         for f in /sys/fs/cgroup/release_agent /sys/fs/cgroup/*/release_agent; do \
           [ -e $f ] && (echo /evil > $f) 2>/dev/null && echo WROTE $f; done; \
         echo '|/evil' > /proc/sys/kernel/core_pattern 2>/dev/null && echo CORE; echo done",
    ]);
    assert_eq!(o.ok(), "done\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

#[test]
fn cve_2025_31133_52565_52881_image_symlinks_over_dev_and_proc_stay_inside() {
    use berth_tests::archive::{image, Layer};
    let d = Daemon::start();
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
    // /dev/null and /dev/console pointing at kernel knobs (the masked-path and
    // console races), and /proc/sys reached through a symlinked directory.
    let layer = Layer::new()
        .dir("bin")
        .executable("bin/busybox", &busybox)
        .symlink("bin/sh", "busybox")
        .dir("dev")
        .symlink("dev/null", "/proc/sys/kernel/core_pattern")
        .symlink("dev/console", "/proc/sysrq-trigger")
        .symlink("dev/pts", "/proc/sys/kernel")
        .dir("etc")
        .dir("tmp")
        .finish();
    let tar = image(&[layer], "evil-dev:latest", &["/bin/sh"]);
    d.docker_in(&["load"], &tar).ok();
    // A masked file this kernel has, with content on the host.
    let masked = [
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/kcore",
    ]
    .into_iter()
    .find(|p| std::fs::read(p).is_ok_and(|b| !b.is_empty()))
    .expect("a masked /proc file with content");
    let script = format!(
        "/bin/busybox ls -l /dev/null | /bin/busybox grep -q '^c' && echo NULL-IS-A-DEVICE; \
         /bin/busybox wc -c < {masked}; \
         echo '|/evil' > /dev/null; echo '|/evil' > /dev/console 2>/dev/null; \
         echo '|/evil' > /proc/sys/kernel/core_pattern 2>/dev/null || echo RO"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "-t",
        "evil-dev",
        "/bin/busybox",
        "sh",
        "-c",
        &script,
    ]);
    let out = o.ok().replace('\r', "");
    assert!(out.contains("NULL-IS-A-DEVICE"), "{out}");
    assert!(out.contains("\n0\n"), "{masked} is masked: {out}");
    assert!(out.contains("RO"), "{out}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

#[test]
fn cve_2021_41091_data_root_is_closed_to_host_users() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&d.data_root), 0o710);
    assert_eq!(mode(&d.exec_root), 0o700);
    // An unprivileged host user can reach nothing below them (a setuid file in a
    // layer must not be runnable by host users).
    for p in [
        d.data_root.join("layers"),
        d.data_root.join("containers"),
        d.exec_root.clone(),
    ] {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
            .arg(&p)
            .output()
            .expect("setpriv");
        assert!(!o.status.success(), "nobody can list {}", p.display());
    }
    d.docker(&["rm", "-f", "box"]).ok();
}

#[test]
fn cve_2021_41089_cp_never_changes_host_files() {
    let d = Daemon::start();
    d.load_busybox();
    let marker = Marker::new();
    let dir = marker.dir.path().display().to_string();
    d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    // Links inside the container that name host paths.
    d.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        &format!("ln -s {dir} /link; ln -s {dir}/secret /file; mkdir -p {dir}"),
    ])
    .ok();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("secret"), "overwritten\n").unwrap();
    let from = format!("{}/secret", src.path().display());
    d.docker(&["cp", &from, "box:/link/"]).ok();
    d.docker(&["cp", &from, "box:/file"]).ok();
    assert_eq!(
        std::fs::read_to_string(marker.path()).unwrap(),
        "host secret\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let before = std::fs::metadata(marker.dir.path())
        .unwrap()
        .permissions()
        .mode();
    d.docker(&["cp", &format!("{}/.", src.path().display()), "box:/link"])
        .ok();
    assert_eq!(
        std::fs::metadata(marker.dir.path())
            .unwrap()
            .permissions()
            .mode(),
        before
    );
    // What landed is the container's.
    assert_eq!(
        d.docker(&["exec", "box", "cat", &format!("{dir}/secret")])
            .ok(),
        "overwritten\n"
    );
    d.docker(&["rm", "-f", "box"]).ok();
}
