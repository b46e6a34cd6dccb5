//! The plan built from specs: the order of its steps and what each option adds.

use super::*;
use crate::spec::*;

fn spec() -> Spec {
    Spec {
        id: "abc".into(),
        rootfs: Overlay {
            lower: vec!["/l/2".into(), "/l/1".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            target: "/c/merged".into(),
            bind: None,
        },
        process: Process {
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin:/usr/bin".into()],
            cwd: "/srv/app".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            capabilities: crate::caps::docker_default(),
            terminal: false,
            open_stdin: false,
            console_size: None,
            rlimits: vec![],
            seccomp: None,
            no_new_privileges: false,
            oom_score_adj: None,
        },
        hostname: "abc".into(),
        domainname: String::new(),
        network: NetworkMode::Private,
        files: vec![FileBind {
            source: "/c/hosts".into(),
            destination: "/etc/hosts".into(),
            readonly: false,
        }],
        masked_paths: DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
        readonly_paths: DEFAULT_READONLY_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        cgroup: CgroupSpec::default(),
        log_path: None,
        log_rotate: None,
        log_compress: false,
        log_remote: None,
        held_fds: 0,
        proxies: Vec::new(),
        sidecar: None,
        mounts: vec![],
        readonly_rootfs: false,
        exit_path: "/x/exit".into(),
        namespaces: Namespaces::default(),
        sysctls: vec![],
        shm_size: None,
        devices: vec![],
        privileged: false,
        writable_cgroups: false,
        cgroup_mounts: vec![],
        userns: None,
    }
}

#[test]
fn namespaces_knobs_and_devices_follow_the_spec() {
    let plain = Plan::build(&spec(), HOST).unwrap();
    for f in [libc::CLONE_NEWPID, libc::CLONE_NEWIPC, libc::CLONE_NEWUTS] {
        assert_ne!(plain.clone_flags & f, 0);
    }
    assert!(plain.new_cgroupns);
    let mut s = spec();
    s.namespaces = Namespaces {
        pid: NsSource::Host,
        ipc: NsSource::Join,
        uts_host: true,
        cgroup_host: true,
        no_shm: true,
        user_join: false,
    };
    s.sysctls = vec![("net.ipv4.ip_forward".into(), "1".into())];
    s.process.oom_score_adj = Some(500);
    s.devices = vec![Device {
        path: "/dev/net/tun".into(),
        kind: 'c',
        major: 10,
        minor: 200,
        mode: 0o666,
        uid: 0,
        gid: 0,
        host_path: None,
    }];
    let plan = Plan::build(&s, HOST).unwrap();
    for f in [libc::CLONE_NEWPID, libc::CLONE_NEWIPC, libc::CLONE_NEWUTS] {
        assert_eq!(plan.clone_flags & f, 0, "{f:#x}");
    }
    assert!(!plan.new_cgroupns);
    // The host's names are never set from the host's UTS namespace.
    assert!(plan.hostname.as_bytes().is_empty());
    let descs: Vec<String> = plan.ops.iter().map(Op::describe).collect();
    assert!(!descs.iter().any(|d| d.contains("/dev/shm")), "{descs:?}");
    let pos = |d: &str| {
        descs
            .iter()
            .position(|x| x == d)
            .unwrap_or_else(|| panic!("{d}: {descs:?}"))
    };
    assert!(pos("creating directory /dev/net") < pos("creating device /dev/net/tun"));
    // Knobs after /proc is mounted, before /proc/sys is made read-only.
    let sysctl = pos("writing 1 to /proc/sys/net/ipv4/ip_forward");
    assert!(pos("mounting proc on /proc") < sysctl);
    assert!(sysctl < pos("making /proc/sys read-only"));
    assert!(descs.contains(&"writing 500 to /proc/self/oom_score_adj".to_string()));
    let mut s = spec();
    s.shm_size = Some(1 << 30);
    s.sysctls = vec![("../../x".into(), "1".into())];
    assert!(Plan::build(&s, HOST).is_err());
    s.sysctls.clear();
    let plan = Plan::build(&s, HOST).unwrap();
    assert!(plan.ops.iter().any(|o| matches!(o, Op::Mount { data: Some(d), .. } if d.to_str().unwrap().contains("size=1073741824"))));
}

const HOST: HostFacts = HostFacts {
    cap_last_cap: 40,
    cap_permitted: u64::MAX,
    cgroup2: false,
    device_cgroup: true,
    in_userns: false,
};

#[test]
fn overlay_first_then_pivot_then_everything_inside() {
    let plan = Plan::build(&spec(), HOST).unwrap();
    let descs: Vec<String> = plan.ops.iter().map(Op::describe).collect();
    assert_eq!(descs[0], "making the mount tree private");
    assert_eq!(descs[1], "mounting overlay on /c/merged");
    assert_eq!(descs[2], "opening /c/hosts to bind");
    assert_eq!(descs[3], "pivot_root to /c/merged");
    assert!(descs.contains(&"bind-mounting /etc/hosts".to_string()));
    match &plan.ops[1] {
        Op::Mount { data: Some(d), .. } => assert_eq!(
            d.to_str().unwrap(),
            "lowerdir=/l/2:/l/1,upperdir=/c/upper,workdir=/c/work"
        ),
        other => panic!("unexpected {other:?}"),
    }
    // After the pivot, no op names a host path.
    assert!(descs[4..].iter().all(|d| !d.contains("/c/")));
    assert!(descs.contains(&"masking /proc/kcore".to_string()));
    assert!(descs.contains(&"making /proc/sys read-only".to_string()));
    assert!(descs.ends_with(&[
        "creating directory /srv".into(),
        "creating directory /srv/app".into()
    ]));
}

#[test]
fn mounts_open_on_the_host_and_land_inside_the_root() {
    let mut s = spec();
    s.mounts = vec![
        MountSpec {
            destination: "/data".into(),
            kind: MountKind::Bind {
                source: "/srv/vol".into(),
                file: false,
                propagation: None,
                nonrecursive: false,
                idmap: false,
                nofollow: false,
            },
            readonly: true,
        },
        MountSpec {
            destination: "/etc/app.conf".into(),
            kind: MountKind::Bind {
                source: "/srv/app.conf".into(),
                file: true,
                propagation: Some("rslave".into()),
                nonrecursive: true,
                idmap: false,
                nofollow: false,
            },
            readonly: false,
        },
        MountSpec {
            destination: "/run/t".into(),
            kind: MountKind::Tmpfs {
                options: "size=1m".into(),
                exec: false,
            },
            readonly: false,
        },
    ];
    s.readonly_rootfs = true;
    let plan = Plan::build(&s, HOST).unwrap();
    let descs: Vec<String> = plan.ops.iter().map(Op::describe).collect();
    let at = |d: &str| {
        descs
            .iter()
            .position(|x| x == d)
            .unwrap_or_else(|| panic!("{d} in {descs:?}"))
    };
    assert!(at("opening /srv/vol to bind") < at("pivot_root to /c/merged"));
    assert!(at("pivot_root to /c/merged") < at("bind-mounting /data"));
    assert!(at("bind-mounting /data") < at("making /data read-only"));
    assert!(at("creating mount point /etc/app.conf") < at("bind-mounting /etc/app.conf"));
    assert!(at("creating directory /run/t") < at("mounting tmpfs on /run/t"));
    // The root goes read-only last, after WORKDIR was made.
    assert_eq!(descs.last().unwrap(), "making / read-only");
    let mut recursive: Vec<(String, bool)> = plan
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::OpenTree {
                source, recursive, ..
            } if source.to_str().unwrap().starts_with("/srv") => {
                Some((source.to_str().unwrap().to_string(), *recursive))
            }
            _ => None,
        })
        .collect();
    recursive.sort();
    assert_eq!(
        recursive,
        [("/srv/app.conf".into(), false), ("/srv/vol".into(), true)]
    );
    assert!(
        plan.ops
            .iter()
            .all(|o| !matches!(o, Op::OpenTree { nofollow: true, .. })),
        "no bind asked to be opened without following links"
    );
    // A slave (or shared) bind is cloned before the tree goes private, so that
    // it stays in the host mount's peer group; a private one after.
    assert!(at("opening /srv/app.conf to bind") < at("making the mount tree private"));
    assert!(at("making the mount tree private") < at("opening /srv/vol to bind"));
    assert!(plan.ops.iter().any(
        |o| matches!(o, Op::Propagation { flags, .. } if *flags == libc::MS_SLAVE | libc::MS_REC)
    ));
    assert!(plan.ops.iter().any(|o| matches!(o, Op::Mount { fstype, flags, .. } if fstype.to_str() == Ok("tmpfs") && flags & libc::MS_NOEXEC != 0 && flags & libc::MS_NOSUID != 0)));
    for bad in ["relative", "/a/../../etc"] {
        let mut s = spec();
        s.mounts = vec![MountSpec {
            destination: bad.into(),
            kind: MountKind::Tmpfs {
                options: String::new(),
                exec: false,
            },
            readonly: false,
        }];
        assert!(
            matches!(Plan::build(&s, HOST), Err(PlanError::BadMount(..))),
            "{bad}"
        );
    }
}

#[test]
fn capabilities_and_path_search() {
    let plan = Plan::build(&spec(), HOST).unwrap();
    assert_eq!(plan.cap_mask, 0xa80425fb);
    assert_eq!(plan.cap_drop.len(), 41 - 14);
    let c: Vec<_> = plan
        .exec_candidates
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert_eq!(c, ["/bin/sh", "/usr/bin/sh"]);
    assert_ne!(plan.clone_flags & libc::CLONE_NEWNET, 0);

    let mut s = spec();
    s.process.uid = 1000;
    s.network = NetworkMode::Host;
    let plan = Plan::build(&s, HOST).unwrap();
    assert_eq!(
        plan.cap_mask, 0,
        "a non-root user starts with no effective capabilities"
    );
    assert_eq!(plan.clone_flags & libc::CLONE_NEWNET, 0);
    assert!(!plan.loopback_up);
}

#[test]
fn without_a_devices_cgroup_devices_are_bound_and_mounts_are_nodev() {
    let plan = Plan::build(
        &spec(),
        HostFacts {
            device_cgroup: false,
            cgroup2: true,
            ..HOST
        },
    )
    .unwrap();
    let descs: Vec<String> = plan.ops.iter().map(Op::describe).collect();
    assert!(descs.contains(&"opening /dev/null to bind".to_string()));
    assert!(descs.contains(&"bind-mounting /dev/null".to_string()));
    assert!(!plan.ops.iter().any(|o| matches!(o, Op::Mknod { .. })));
    for op in &plan.ops {
        if let Op::Mount {
            fstype,
            target,
            flags,
            ..
        } = op
        {
            if ["overlay", "tmpfs"].contains(&fstype.to_str().unwrap())
                && target.to_str() != Ok("/dev/shm")
            {
                assert_ne!(flags & libc::MS_NODEV, 0, "{target:?} must be nodev");
            }
        }
    }
    let with = Plan::build(&spec(), HOST).unwrap();
    assert_eq!(
        with.ops
            .iter()
            .filter(|o| matches!(o, Op::Mknod { .. }))
            .count(),
        6
    );
}

#[test]
fn bad_input_is_named() {
    let mut s = spec();
    s.process.args.clear();
    assert!(matches!(Plan::build(&s, HOST), Err(PlanError::NoCommand)));
    let mut s = spec();
    s.process.env.push("A=\0".into());
    let e = Plan::build(&s, HOST).unwrap_err();
    assert_eq!(e.to_string(), "environment variable contains a NUL byte");
}

#[test]
fn a_user_namespace_gets_its_trees_from_the_parent() {
    use crate::spec::{IdMap, IdRange};
    let mut s = spec();
    let r = IdRange {
        container: 0,
        host: 100_000,
        size: 65_536,
    };
    s.userns = Some(IdMap {
        uids: vec![r],
        gids: vec![r],
    });
    s.mounts = vec![MountSpec {
        destination: "/data".into(),
        kind: MountKind::Bind {
            source: "/srv/vol".into(),
            file: false,
            propagation: None,
            nonrecursive: false,
            idmap: true,
            nofollow: false,
        },
        readonly: false,
    }];
    let plan = Plan::build(&s, HOST).unwrap();
    assert_ne!(plan.clone_flags & libc::CLONE_NEWUSER, 0);
    assert!(plan.rlimits_by_parent);
    let u = plan.userns.as_ref().unwrap();
    assert_eq!(u.uid_map.to_str().unwrap(), "0 100000 65536\n");
    assert_eq!((u.root_uid, u.root_gid), (100_000, 100_000));
    // No host path is opened from inside: the parent prepares every tree.
    assert!(!plan.ops.iter().any(|o| matches!(o, Op::OpenTree { .. })));
    assert!(matches!(plan.prepare[0], Prepare::Overlay { slot: 0, .. }));
    assert!(plan.prepare.iter().any(|p| matches!(
        p,
        Prepare::Tree { source, idmap: true, .. } if source.to_str() == Ok("/srv/vol")
    )));
    let pos = |f: &dyn Fn(&Op) -> bool| plan.ops.iter().position(f).unwrap();
    let pivot = pos(&|o| matches!(o, Op::PivotRootTree { slot: 0 }));
    let proc = pos(&|o| matches!(o, Op::FsMount { fstype, .. } if fstype.to_str() == Ok("proc")));
    // proc is made while the host's is still visible, files after becoming root.
    assert!(proc < pivot, "{:?}", plan.ops);
    assert!(matches!(plan.ops[pivot + 1], Op::BecomeRoot));
    let made_here = |o: &Op| match o {
        Op::Mknod { .. } => true,
        Op::Mount { fstype, .. } => fstype.to_str() == Ok("proc"),
        _ => false,
    };
    assert!(!plan.ops.iter().any(made_here));
}

#[test]
fn a_nofollow_bind_is_opened_without_following_links() {
    let mut s = spec();
    s.mounts = vec![MountSpec {
        destination: "/v".into(),
        kind: MountKind::Bind {
            source: "/srv/plugin/vol".into(),
            file: false,
            propagation: None,
            nonrecursive: false,
            idmap: false,
            nofollow: true,
        },
        readonly: false,
    }];
    let plan = Plan::build(&s, HOST).unwrap();
    assert!(plan.ops.iter().any(|o| matches!(
        o,
        Op::OpenTree { source, nofollow: true, .. } if source.to_str() == Ok("/srv/plugin/vol")
    )));
}
