use super::*;

const ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
const ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

fn nr(name: &str) -> u32 {
    ARCHES[0].lookup(name).unwrap_or_else(|| panic!("{name}"))
}

fn call(p: &Program, name: &str, args: [u64; 6]) -> u32 {
    p.evaluate(AUDIT_ARCH_X86_64, nr(name), args)
}

fn docker_caps() -> Vec<u8> {
    crate::caps::docker_default()
}

#[test]
fn default_profile_allows_the_ordinary_and_refuses_the_dangerous() {
    let p = Profile::default_profile()
        .compile(&docker_caps(), (6, 1))
        .unwrap();
    eprintln!("default profile: {} instructions", p.0.len());
    assert!(p.0.len() < 2048, "{} instructions", p.0.len());
    for ok in [
        "read",
        "write",
        "openat",
        "mkdir",
        "execve",
        "clone",
        "wait4",
        "arch_prctl",
        "openat2",
        "close_range",
        "fchmodat2",
    ] {
        assert_eq!(call(&p, ok, [0; 6]), ALLOW, "{ok}");
    }
    for denied in [
        "keyctl",
        "add_key",
        "request_key",
        "unshare",
        "mount",
        "umount2",
        "swapoff",
        "kexec_load",
        "open_by_handle_at",
        "bpf",
        "perf_event_open",
        "setns",
        "pivot_root",
        "init_module",
        "reboot",
        "chroot",
        "userfaultfd",
        "move_mount",
        "fsopen",
    ] {
        // chroot is allowed with CAP_SYS_CHROOT, which Docker's default set has.
        let want = if denied == "chroot" { ALLOW } else { EPERM };
        assert_eq!(call(&p, denied, [0; 6]), want, "{denied}");
    }
    // clone: only without namespace flags; clone3 answers ENOSYS (libc falls back).
    assert_eq!(call(&p, "clone", [0x11, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        call(&p, "clone", [0x1000_0000 | 0x11, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(call(&p, "clone", [0x4000_0000, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(
        call(&p, "clone", [1 << 32 | 0x11, 0, 0, 0, 0, 0]),
        ALLOW,
        "high bits are not flags"
    );
    assert_eq!(call(&p, "clone3", [0; 6]), ENOSYS);
    // personality: the five values only, compared on all 64 bits.
    for v in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(call(&p, "personality", [v, 0, 0, 0, 0, 0]), ALLOW, "{v:#x}");
    }
    for v in [1, 0x0040_0000, 0x1_0000_0000] {
        assert_eq!(call(&p, "personality", [v, 0, 0, 0, 0, 0]), EPERM, "{v:#x}");
    }
    // socket: every family but AF_VSOCK.
    for (family, want) in [
        (1, ALLOW),
        (2, ALLOW),
        (10, ALLOW),
        (37, ALLOW),
        (38, EPERM),
        (39, ALLOW),
        (40, EPERM),
        (41, ALLOW),
        (1 << 32, ALLOW),
    ] {
        assert_eq!(
            call(&p, "socket", [family, 0, 0, 0, 0, 0]),
            want,
            "family {family:#x}"
        );
    }
    // Past the newest syscall berth knows: ENOSYS. Unknown arch: the default.
    assert_eq!(p.evaluate(AUDIT_ARCH_X86_64, 1000, [0; 6]), ENOSYS);
    assert_eq!(p.evaluate(0x4000_00b7, 0, [0; 6]), EPERM);
    // The sub-architectures: x32 by its bit, i386 by its audit arch and numbers.
    assert_eq!(
        p.evaluate(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, [0; 6]),
        ALLOW,
        "x32 read"
    );
    let x32_keyctl = ARCHES[1].lookup("keyctl").unwrap();
    assert_eq!(p.evaluate(AUDIT_ARCH_X86_64, x32_keyctl, [0; 6]), EPERM);
    let i386 = |n: &str| ARCHES[2].lookup(n).unwrap();
    assert_eq!(p.evaluate(AUDIT_ARCH_I386, i386("mkdir"), [0; 6]), ALLOW);
    assert_eq!(
        p.evaluate(AUDIT_ARCH_I386, i386("socketcall"), [0; 6]),
        ALLOW
    );
    assert_eq!(p.evaluate(AUDIT_ARCH_I386, i386("keyctl"), [0; 6]), EPERM);
    assert_eq!(
        p.evaluate(
            AUDIT_ARCH_I386,
            i386("personality"),
            [0xffff_ffff, 0, 0, 0, 0, 0]
        ),
        ALLOW
    );
}

#[test]
fn capabilities_widen_the_profile() {
    let mut caps = docker_caps();
    caps.push(crate::caps::from_name("SYS_ADMIN").unwrap());
    caps.push(crate::caps::from_name("SYS_PTRACE").unwrap());
    let p = Profile::default_profile().compile(&caps, (6, 1)).unwrap();
    for ok in [
        "mount",
        "unshare",
        "setns",
        "bpf",
        "clone3",
        "ptrace",
        "process_vm_readv",
    ] {
        assert_eq!(call(&p, ok, [0; 6]), ALLOW, "{ok}");
    }
    assert_eq!(call(&p, "clone", [0x1000_0000, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, "keyctl", [0; 6]), EPERM);
    // Fewer capabilities, fewer calls: chroot needs CAP_SYS_CHROOT.
    let p = Profile::default_profile().compile(&[], (6, 1)).unwrap();
    assert_eq!(call(&p, "chroot", [0; 6]), EPERM);
    // minKernel: ptrace with CAP_SYS_PTRACE only, before 4.8.
    let p = Profile::default_profile()
        .compile(&docker_caps(), (4, 4))
        .unwrap();
    assert_eq!(call(&p, "ptrace", [0; 6]), EPERM);
    let p = Profile::default_profile()
        .compile(&docker_caps(), (4, 8))
        .unwrap();
    assert_eq!(call(&p, "ptrace", [0; 6]), ALLOW);
}

#[test]
fn custom_profiles_in_dockers_format() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"name": "kill", "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["lseek"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 2, "value": 1, "op": "SCMP_CMP_GE"},
                      {"index": 2, "value": 2, "op": "SCMP_CMP_LE"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 240, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ"},
                      {"index": 1, "value": 5, "op": "SCMP_CMP_NE"}]},
            {"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}
        ]
    }"#;
    let p = Profile::parse(json)
        .unwrap()
        .compile(&docker_caps(), (6, 1))
        .unwrap();
    assert_eq!(call(&p, "mkdir", [0; 6]), EPERM);
    assert_eq!(call(&p, "mkdirat", [0; 6]), EPERM);
    assert_eq!(call(&p, "rmdir", [0; 6]), ALLOW);
    assert_eq!(call(&p, "kill", [1, 9, 0, 0, 0, 0]), 0x0005_0000 | 13);
    assert_eq!(call(&p, "kill", [1, 15, 0, 0, 0, 0]), ALLOW);
    // Two conditions on one argument: either one (runc's rule).
    assert_eq!(call(&p, "lseek", [0, 0, 0, 0, 0, 0]), 0x8000_0000, "0 <= 2");
    assert_eq!(call(&p, "lseek", [0, 0, 7, 0, 0, 0]), 0x8000_0000, "7 >= 1");
    assert_eq!(call(&p, "getpid", [0; 6]), ALLOW, "includes.caps not held");
    assert_eq!(call(&p, "dup", [0x1f, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&p, "dup", [0x1f, 5, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, "dup", [0x2f, 0, 0, 0, 0, 0]), ALLOW);
    // Allow by default: unknown and x32 calls are allowed too (no sub-arch asked
    // for: x32 gets the default).
    assert_eq!(p.evaluate(AUDIT_ARCH_X86_64, 1000, [0; 6]), ALLOW);

    for (bad, why) in [
        ("{", "decoding"),
        (r#"{"defaultAction": "SCMP_ACT_NOPE"}"#, "unknown action"),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
            "argument index",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_ABOUT"}]}]}"#,
            "unknown operator",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
            "cannot both",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}"#,
            "unknown architecture",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "either 'name' or 'names'",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_FLY"]}}]}"#,
            "unknown capability",
        ),
    ] {
        let e = Profile::parse(bad).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn programs_survive_encoding() {
    let p = Profile::default_profile()
        .compile(&docker_caps(), (6, 1))
        .unwrap();
    assert_eq!(Program::decode(&p.encode()), p);
}
