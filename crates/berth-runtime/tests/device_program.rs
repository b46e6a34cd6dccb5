//! The eBPF device program on a real cgroup2 directory: on a pure v2 host it is
//! the only device restriction a container has, so it is checked here alone, in a
//! cgroup of its own made in this host's cgroup2 hierarchy (hybrid or pure v2),
//! with a forked child that opens device nodes from inside it. Needs root.

use berth_runtime::{devices, sys};
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The cgroup2 mount: /sys/fs/cgroup on pure v2, /sys/fs/cgroup/unified on hybrid.
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("this test needs a cgroup2 hierarchy (pure v2 or hybrid's unified)")
}

/// A shell that joins `dir` tries each `(path, write)` open: 0 when it opened, 1
/// when it was refused.
fn opens_in(dir: &std::path::Path, tries: &[(&str, bool)]) -> Vec<i32> {
    tries
        .iter()
        .map(|(path, write)| {
            let procs = dir.join("cgroup.procs");
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "echo $$ > {} && ( exec 3{}{path} ) && echo 0 || echo 1",
                    procs.display(),
                    if *write { ">" } else { "<" }
                ))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(-1)
        })
        .collect()
}

#[test]
fn the_device_program_allows_only_its_rules() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test needs root"
    );
    let dir = cgroup2_root().join(format!("berth-devtest-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let result = std::panic::catch_unwind(|| {
        // Before: this cgroup restricts nothing.
        assert_eq!(opens_in(&dir, &[("/dev/kmsg", false)]), [0]);
        let rules = devices::rules(&["c 1:7 r".into()]).unwrap();
        let prog = sys::load_device_program(&devices::program(&rules)).unwrap();
        let cg = std::fs::File::open(&dir).unwrap();
        sys::attach_device_program(cg.as_fd(), prog.as_fd()).unwrap();
        assert_eq!(sys::device_programs(cg.as_fd()).unwrap(), 1);
        // /dev/null is a default; /dev/kmsg (1:11) is not; /dev/full (1:7) is
        // readable only by the extra rule... and writable by the default one.
        assert_eq!(
            opens_in(
                &dir,
                &[
                    ("/dev/null", true),
                    ("/dev/kmsg", false),
                    ("/dev/full", false),
                    ("/dev/zero", true),
                ]
            ),
            [0, 1, 0, 0]
        );
    });
    let _ = std::fs::remove_dir(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_read_only_rule_refuses_writes() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test needs root"
    );
    let dir = cgroup2_root().join(format!("berth-devtest-ro-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let result = std::panic::catch_unwind(|| {
        // Only: read of /dev/kmsg.
        let prog = sys::load_device_program(&devices::program(&[
            devices::Rule::parse("c 1:11 r").unwrap()
        ]))
        .unwrap();
        let cg = std::fs::File::open(&dir).unwrap();
        sys::attach_device_program(cg.as_fd(), prog.as_fd()).unwrap();
        assert_eq!(
            opens_in(
                &dir,
                &[
                    ("/dev/kmsg", false),
                    ("/dev/kmsg", true),
                    ("/dev/null", true)
                ]
            ),
            [0, 1, 1]
        );
    });
    let _ = std::fs::remove_dir(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
