//! A [`Plan`] is the exact list of operations that turn a freshly cloned child into a
//! container, with every path and string already converted for the kernel. Building
//! it allocates and may fail with a clear error; performing it (in [`crate::sys`])
//! does neither, because it runs between clone and exec.
//!
//! Everything but the overlay mount happens after pivot_root, so that a symlink in
//! the image (say `/proc -> /`) resolves inside the container and can never redirect
//! a mount onto the host.

mod op;
mod process;
pub use op::{Op, Prepare};

use crate::spec::{IdMap, MountKind, NetworkMode, NsSource, Spec};
use std::ffi::{CString, NulError};
use std::os::fd::RawFd;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{what} contains a NUL byte")]
    Nul {
        what: &'static str,
        #[source]
        source: NulError,
    },
    #[error("at most {MAX_TREES} files can be bound into a container, {0} were asked for")]
    TooManyBinds(usize),
    #[error("invalid mount {0:?}: {1}")]
    BadMount(String, &'static str),
    #[error("no command given")]
    NoCommand,
}

/// Steps outside the op list, reported by the child with these negative indices.
pub mod step {
    pub const EXEC: i32 = -1;
    pub const SETSID: i32 = -2;
    pub const CGROUPNS: i32 = -3;
    pub const STDIO: i32 = -4;
    pub const LOOPBACK: i32 = -5;
    pub const HOSTNAME: i32 = -6;
    pub const CAPBSET: i32 = -7;
    pub const SETGROUPS: i32 = -8;
    pub const SETGID: i32 = -9;
    pub const SETUID: i32 = -10;
    pub const CAPSET: i32 = -11;
    pub const CHDIR: i32 = -12;
    pub const CGROUP_JOIN: i32 = -13;
    pub const TERMINAL: i32 = -14;
    pub const RLIMITS: i32 = -15;
    pub const CLOSE_FDS: i32 = -16;
    pub const NO_NEW_PRIVS: i32 = -17;
    pub const SECCOMP: i32 = -18;
    pub const CWD_OUTSIDE: i32 = -19;
}

/// Host facts the plan depends on, read once by the caller.
#[derive(Debug, Clone, Copy)]
pub struct HostFacts {
    /// /proc/sys/kernel/cap_last_cap
    pub cap_last_cap: u8,
    /// The capabilities this process holds (CapPrm): a child can be given no more.
    pub cap_permitted: u64,
    /// Whether the cgroup2 hierarchy carries the controllers (pure v2 host): only then
    /// is a cgroup2 filesystem mounted at /sys/fs/cgroup in the container.
    pub cgroup2: bool,
    /// Whether a devices cgroup restricts which device nodes can be opened. Without
    /// one, the rootfs and /dev are mounted `nodev` and the standard nodes are bound
    /// in from the host, so a node made with CAP_MKNOD cannot be opened.
    pub device_cgroup: bool,
    /// The shim itself runs in a user namespace other than the host's (a
    /// rootless berthd's): proc and sysfs can then be mounted only while a
    /// fully visible instance is in the mount namespace, as for a container
    /// with a user namespace of its own.
    pub in_userns: bool,
}

/// The standard device nodes: name and (major, minor).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

#[derive(Debug)]
pub struct Plan {
    pub clone_flags: libc::c_int,
    pub new_cgroupns: bool,
    pub loopback_up: bool,
    pub ops: Vec<Op>,
    pub hostname: CString,
    pub domainname: CString,
    /// Capabilities to drop from the bounding set.
    pub cap_drop: Vec<libc::c_int>,
    /// Permitted and effective capabilities after the switch to `uid`.
    pub cap_mask: u64,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub cwd: CString,
    /// Where to look for the program, in order (PATH resolved inside the container).
    pub exec_candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// cgroup v1 `tasks` files the child writes itself into, first thing.
    pub cgroup_tasks: Vec<CString>,
    /// Allocate a pseudo-terminal in the container's own devpts (after its mounts),
    /// make it stdin, stdout, stderr and the controlling terminal, and send the
    /// master to the shim.
    pub controlling_tty: bool,
    /// The terminal's size (rows, columns).
    pub winsize: Option<(u16, u16)>,
    /// Bind the terminal over /dev/console (a container's own terminal; never
    /// for an exec, which shares the container's /dev).
    pub bind_console: bool,
    /// `setrlimit` calls: resource, soft, hard.
    pub rlimits: Vec<(libc::c_int, libc::rlim_t, libc::rlim_t)>,
    /// The seccomp program loaded before exec, and seccomp(2)'s flags for it.
    pub seccomp: Option<Vec<crate::seccomp::Insn>>,
    pub seccomp_flags: u32,
    /// PR_SET_NO_NEW_PRIVS before exec.
    pub no_new_privs: bool,
    /// A user namespace of the child's own (`--userns-remap`).
    pub userns: Option<UserNs>,
    /// Trees the parent opens before clone (only with `userns`).
    pub prepare: Vec<Prepare>,
    /// Namespaces the parent enters around clone, so that the child is created in
    /// them before its user namespace (berthd's network namespace): from inside
    /// the new user namespace it could not enter them.
    pub parent_ns: Vec<(RawFd, libc::c_int)>,
    /// Network sysctls the parent writes while it is in the network namespace
    /// of [`Plan::parent_ns`] (path under /proc/sys, value).
    pub parent_sysctls: Vec<(CString, CString)>,
    /// Another container's user namespace (a pidfd of it) the child is created
    /// in, instead of one of its own: see [`crate::sys::spawn`].
    pub join_userns: Option<RawFd>,
    /// The parent sets `rlimits` with prlimit(2): in a user namespace the child
    /// could not raise a hard limit.
    pub rlimits_by_parent: bool,
}

/// The mapping of a child's own user namespace, as the parent writes it.
#[derive(Debug)]
pub struct UserNs {
    pub uid_map: CString,
    pub gid_map: CString,
    /// The host IDs of the container's root: the file-system IDs the overlay is
    /// made with.
    pub root_uid: libc::uid_t,
    pub root_gid: libc::gid_t,
}

const MOUNT_ATTR_RDONLY: u32 = 0x1;
const MOUNT_ATTR_NOSUID: u32 = 0x2;
const MOUNT_ATTR_NODEV: u32 = 0x4;
const MOUNT_ATTR_NOEXEC: u32 = 0x8;

/// How many host files one container can have bound in (the child keeps their
/// trees in a fixed array: no allocation after clone).
pub const MAX_TREES: usize = 64;

fn cstr(what: &'static str, s: impl Into<Vec<u8>>) -> Result<CString, PlanError> {
    CString::new(s).map_err(|source| PlanError::Nul { what, source })
}

fn path_cstr(what: &'static str, p: &Path) -> Result<CString, PlanError> {
    cstr(what, p.as_os_str().as_encoded_bytes().to_vec())
}

impl Plan {
    pub fn build(spec: &Spec, host: HostFacts) -> Result<Plan, PlanError> {
        let p = &spec.process;
        p.args.first().ok_or(PlanError::NoCommand)?;
        let mut ops = Vec::new();
        let mut prepare = Vec::new();
        let userns = spec.userns.as_ref();
        let private_net = spec.network == NetworkMode::Private;
        // In a user namespace no node can be made: the standard ones come from the
        // host as binds, as they do without a devices cgroup.
        let bind_devices = !host.device_cgroup || userns.is_some() || host.in_userns;
        let binds = spec
            .mounts
            .iter()
            .filter(|m| matches!(m.kind, MountKind::Bind { .. }))
            .count();
        let mut trees = spec.files.len() + binds + if bind_devices { DEVICES.len() } else { 0 };
        // proc and sysfs are made before pivot_root in a user namespace.
        let early_proc = userns.is_some() || host.in_userns;
        if early_proc && userns.is_none() {
            trees += 2;
        }
        if userns.is_some() {
            // The root, /sys without its own network namespace, the cgroup binds,
            // the devices asked for.
            // proc and sysfs, made before pivot_root.
            trees += 4 + spec.cgroup_mounts.len() + spec.devices.len();
        }
        if trees > MAX_TREES {
            return Err(PlanError::TooManyBinds(trees));
        }
        let mount =
            |source: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: Option<&str>| {
                Ok::<Op, PlanError>(Op::Mount {
                    source: cstr("mount source", source)?,
                    target: cstr("mount target", target)?,
                    fstype: cstr("filesystem type", fstype)?,
                    flags,
                    data: data.map(|d| cstr("mount options", d)).transpose()?,
                })
            };
        let mkdir = |path: &str, mode| {
            Ok::<Op, PlanError>(Op::Mkdir {
                path: cstr("path", path)?,
                mode,
            })
        };
        // A host tree for a slot: opened by the child before pivot_root, or by the
        // parent before clone when the child has a user namespace of its own.
        let open_tree = |ops: &mut Vec<Op>,
                         prepare: &mut Vec<Prepare>,
                         source: CString,
                         slot: usize,
                         recursive: bool,
                         idmap: bool,
                         nofollow: bool| {
            if userns.is_some() {
                prepare.push(Prepare::Tree {
                    slot,
                    source,
                    recursive,
                    idmap,
                    optional: false,
                    nofollow,
                });
            } else {
                ops.push(Op::OpenTree {
                    source,
                    slot,
                    recursive,
                    nofollow,
                });
            }
        };

        // Binds whose propagation is shared or slave are cloned from the host's
        // mounts before the tree is made private: the clone then joins the
        // host mount's peer group (`clone_mnt` keeps it), so that mounts reach
        // the host (shared) or come from it (slave), as with runc. Every other
        // bind is cloned from the private copy.
        let mut private_at = ops.len();
        ops.push(Op::MakePrivate);
        let o = &spec.rootfs;
        let nodev = if host.device_cgroup {
            0
        } else {
            libc::MS_NODEV
        };
        let mut slot = 0;
        let root_slot = if userns.is_some() {
            slot += 1;
            match &o.bind {
                Some(dir) => prepare.push(Prepare::Tree {
                    slot: 0,
                    source: path_cstr("rootfs", dir)?,
                    recursive: true,
                    idmap: true,
                    optional: false,
                    nofollow: false,
                }),
                None => {
                    let rw = o.upper.parent().filter(|p| Some(*p) == o.work.parent());
                    let (Some(rw), Some(upper), Some(work)) =
                        (rw, o.upper.file_name(), o.work.file_name())
                    else {
                        return Err(PlanError::BadMount(
                            o.upper.display().to_string(),
                            "the writable layer and its work directory must share a directory",
                        ));
                    };
                    prepare.push(Prepare::Overlay {
                        slot: 0,
                        lower: o
                            .lower
                            .iter()
                            .map(|l| path_cstr("layer", l))
                            .collect::<Result<_, _>>()?,
                        rw: path_cstr("rootfs", rw)?,
                        upper: cstr("rootfs", upper.as_encoded_bytes().to_vec())?,
                        work: cstr("rootfs", work.as_encoded_bytes().to_vec())?,
                        nodev: nodev != 0,
                    });
                }
            }
            Some(0)
        } else {
            let lower = o
                .lower
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(":");
            let mut data = format!(
                "lowerdir={lower},upperdir={},workdir={}",
                o.upper.display(),
                o.work.display()
            );
            // In a user namespace (a rootless berthd's) overlayfs keeps its
            // whiteout and opaque attributes in user.*.
            if host.in_userns {
                data.push_str(",userxattr");
            }
            ops.push(match &o.bind {
                Some(dir) => Op::Mount {
                    source: path_cstr("rootfs", dir)?,
                    target: path_cstr("rootfs", &o.target)?,
                    fstype: CString::default(),
                    flags: libc::MS_BIND | libc::MS_REC | nodev,
                    data: None,
                },
                None => Op::Mount {
                    source: cstr("mount source", "overlay")?,
                    target: path_cstr("rootfs", &o.target)?,
                    fstype: cstr("filesystem type", "overlay")?,
                    flags: nodev,
                    data: Some(cstr("overlay options", data)?),
                },
            });
            None
        };
        // The container's own files (hosts, resolv.conf, ...), which its root owns;
        // a read-only one (the init binary) is the host's and stays unmapped, so
        // that no remount could ever make it the container's to write.
        let file_slot = slot;
        for f in &spec.files {
            open_tree(
                &mut ops,
                &mut prepare,
                path_cstr("bind source", &f.source)?,
                slot,
                false,
                !f.readonly,
                false,
            );
            slot += 1;
        }
        // Bind mounts are opened on the host side now, and placed after pivot_root,
        // where every path of the container resolves inside its own root.
        let bind_slot = slot;
        for m in &spec.mounts {
            if !m.destination.starts_with('/') || m.destination.split('/').any(|c| c == "..") {
                return Err(PlanError::BadMount(
                    m.destination.clone(),
                    "the destination must be an absolute path without ..",
                ));
            }
            if let MountKind::Bind {
                source,
                nonrecursive,
                idmap,
                propagation,
                nofollow,
                ..
            } = &m.kind
            {
                let propagates = propagation
                    .as_deref()
                    .is_some_and(|p| p.ends_with("shared") || p.ends_with("slave"));
                if propagates && userns.is_none() {
                    ops.insert(
                        private_at,
                        Op::OpenTree {
                            source: path_cstr("bind source", source)?,
                            slot,
                            recursive: !nonrecursive,
                            nofollow: *nofollow,
                        },
                    );
                    private_at += 1;
                } else {
                    open_tree(
                        &mut ops,
                        &mut prepare,
                        path_cstr("bind source", source)?,
                        slot,
                        !nonrecursive,
                        *idmap,
                        *nofollow,
                    );
                }
                slot += 1;
            }
        }
        // Without a devices cgroup, the device nodes come from the host as binds
        // (allowed on a nodev /dev, unlike nodes made there).
        let dev_slot = slot;
        if bind_devices {
            for (name, _, _) in DEVICES {
                open_tree(
                    &mut ops,
                    &mut prepare,
                    cstr("device", format!("/dev/{name}"))?,
                    slot,
                    false,
                    false,
                    false,
                );
                slot += 1;
            }
        }
        // A user namespace's child: the devices asked for, the hierarchies of its
        // cgroup (cgroup v1 cannot be mounted from a user namespace) and, when its
        // network namespace is berthd's (owned by the host's user namespace, where
        // sysfs cannot be mounted from inside), the host's sysfs alone, without the
        // file systems mounted below it.
        let user_dev_slot = slot;
        let mut cgroup_slot = slot;
        let mut sys_slot = None;
        if userns.is_some() {
            for d in &spec.devices {
                let Some(hp) = &d.host_path else {
                    return Err(PlanError::BadMount(
                        d.path.clone(),
                        "a device in a user namespace needs its host node",
                    ));
                };
                open_tree(
                    &mut ops,
                    &mut prepare,
                    path_cstr("device", hp)?,
                    slot,
                    false,
                    false,
                    false,
                );
                slot += 1;
            }
            cgroup_slot = slot;
            if !host.cgroup2 {
                for m in &spec.cgroup_mounts {
                    if m.name.is_empty() || m.name.contains('/') || m.name == ".." {
                        return Err(PlanError::BadMount(m.name.clone(), "not a hierarchy name"));
                    }
                    if spec.cgroup.path.split('/').any(|c| c == "..") {
                        return Err(PlanError::BadMount(
                            spec.cgroup.path.clone(),
                            "not a cgroup path",
                        ));
                    }
                    prepare.push(Prepare::Tree {
                        slot,
                        source: cstr(
                            "cgroup path",
                            format!(
                                "/sys/fs/cgroup/{}/{}",
                                m.name,
                                spec.cgroup.path.trim_start_matches('/')
                            ),
                        )?,
                        recursive: false,
                        idmap: false,
                        optional: true,
                        nofollow: false,
                    });
                    slot += 1;
                }
            }
            if !private_net {
                prepare.push(Prepare::Tree {
                    slot,
                    source: cstr("sysfs", "/sys")?,
                    recursive: false,
                    idmap: false,
                    optional: false,
                    nofollow: false,
                });
                sys_slot = Some(slot);
                slot += 1;
            }
        }
        // proc and sysfs (of its own network namespace) are made before pivot_root
        // in a user namespace: the kernel lets them be mounted there only while a
        // fully visible instance is in the mount namespace (the host's, until the
        // old root goes). They are moved into place afterwards.
        let mut proc_slot = None;
        if early_proc {
            ops.push(Op::FsMount {
                fstype: cstr("filesystem type", "proc")?,
                slot,
                attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            });
            proc_slot = Some(slot);
            slot += 1;
            // A rootless berthd's own network namespace is its user
            // namespace's: sysfs can be made for it too.
            if private_net || userns.is_none() {
                ops.push(Op::FsMount {
                    fstype: cstr("filesystem type", "sysfs")?,
                    slot,
                    attrs: MOUNT_ATTR_NOSUID
                        | MOUNT_ATTR_NODEV
                        | MOUNT_ATTR_NOEXEC
                        | if spec.privileged {
                            0
                        } else {
                            MOUNT_ATTR_RDONLY
                        },
                });
                sys_slot = Some(slot);
                slot += 1;
            }
        }
        debug_assert!(slot <= MAX_TREES);
        match root_slot {
            Some(root) => {
                ops.push(Op::MoveMount {
                    slot: root,
                    target: path_cstr("rootfs", &o.target)?,
                });
                ops.push(Op::PivotRootTree { slot: root });
                ops.push(Op::BecomeRoot);
            }
            None => ops.push(Op::PivotRoot {
                new_root: path_cstr("rootfs", &o.target)?,
            }),
        }

        use libc::{MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_STRICTATIME};
        ops.push(mkdir("/proc", 0o755)?);
        match proc_slot {
            Some(slot) => ops.push(Op::MoveMount {
                slot,
                target: cstr("path", "/proc")?,
            }),
            None => ops.push(mount(
                "proc",
                "/proc",
                "proc",
                MS_NOSUID | MS_NOEXEC | MS_NODEV,
                None,
            )?),
        }
        ops.push(mkdir("/dev", 0o755)?);
        ops.push(mount(
            "tmpfs",
            "/dev",
            "tmpfs",
            MS_NOSUID | MS_STRICTATIME | nodev,
            Some("mode=755,size=65536k"),
        )?);
        ops.push(mkdir("/dev/pts", 0o755)?);
        ops.push(mount(
            "devpts",
            "/dev/pts",
            "devpts",
            MS_NOSUID | MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        )?);
        if !spec.namespaces.no_shm {
            ops.push(mkdir("/dev/shm", 0o1777)?);
            let size = spec.shm_size.unwrap_or(64 << 20);
            ops.push(mount(
                "shm",
                "/dev/shm",
                "tmpfs",
                MS_NOSUID | MS_NOEXEC | MS_NODEV,
                Some(&format!("mode=1777,size={size}")),
            )?);
        }
        ops.push(mkdir("/dev/mqueue", 0o755)?);
        ops.push(mount(
            "mqueue",
            "/dev/mqueue",
            "mqueue",
            MS_NOSUID | MS_NOEXEC | MS_NODEV,
            None,
        )?);
        for (i, (name, major, minor)) in DEVICES.iter().enumerate() {
            let path = cstr("path", format!("/dev/{name}"))?;
            if !bind_devices {
                ops.push(Op::Mknod {
                    path,
                    mode: libc::S_IFCHR | 0o666,
                    dev: libc::makedev(*major, *minor),
                });
            } else {
                ops.push(Op::Touch { path: path.clone() });
                ops.push(Op::MoveMount {
                    slot: dev_slot + i,
                    target: path,
                });
            }
        }
        if !spec.devices.is_empty() && !host.device_cgroup && userns.is_none() {
            return Err(PlanError::BadMount(
                spec.devices[0].path.clone(),
                "devices need a devices cgroup on this host",
            ));
        }
        for (i, d) in spec.devices.iter().enumerate() {
            if !d.path.starts_with("/dev/") || d.path.split('/').any(|c| c == "..") {
                return Err(PlanError::BadMount(
                    d.path.clone(),
                    "a device must be below /dev, without ..",
                ));
            }
            let parts: Vec<&str> = d.path.split('/').filter(|s| !s.is_empty()).collect();
            let mut prefix = String::new();
            for part in &parts[..parts.len() - 1] {
                prefix.push('/');
                prefix.push_str(part);
                ops.push(mkdir(&prefix, 0o755)?);
            }
            if userns.is_some() {
                let path = cstr("device", d.path.as_str())?;
                ops.push(Op::Touch { path: path.clone() });
                ops.push(Op::MoveMount {
                    slot: user_dev_slot + i,
                    target: path,
                });
                continue;
            }
            let kind = if d.kind == 'b' {
                libc::S_IFBLK
            } else {
                libc::S_IFCHR
            };
            ops.push(Op::Mknod {
                path: cstr("device", d.path.as_str())?,
                mode: kind | (d.mode & 0o7777),
                dev: libc::makedev(d.major, d.minor),
            });
            if d.uid != 0 || d.gid != 0 {
                ops.push(Op::Chown {
                    path: cstr("device", d.path.as_str())?,
                    uid: d.uid,
                    gid: d.gid,
                });
            }
        }
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
            ("pts/ptmx", "/dev/ptmx"),
            ("/proc/kcore", "/dev/core"),
        ] {
            ops.push(Op::Symlink {
                target: cstr("symlink target", target)?,
                link: cstr("path", link)?,
            });
        }
        // --privileged: /sys and the cgroup filesystem writable, as Docker has them.
        let sys_ro = if spec.privileged { 0 } else { MS_RDONLY };
        ops.push(mkdir("/sys", 0o755)?);
        match sys_slot {
            Some(slot) => {
                let sys = cstr("path", "/sys")?;
                ops.push(Op::MoveMount {
                    slot,
                    target: sys.clone(),
                });
                ops.push(Op::SetReadOnly {
                    path: sys,
                    recursive: false,
                });
            }
            None => ops.push(mount(
                "sysfs",
                "/sys",
                "sysfs",
                MS_NOSUID | MS_NOEXEC | MS_NODEV | sys_ro,
                None,
            )?),
        }
        if host.cgroup2 {
            let cg_ro = if spec.privileged || spec.writable_cgroups {
                0
            } else {
                MS_RDONLY
            };
            ops.push(mount(
                "cgroup",
                "/sys/fs/cgroup",
                "cgroup2",
                MS_NOSUID | MS_NOEXEC | MS_NODEV | cg_ro,
                None,
            )?);
        }
        // Cgroup v1 and hybrid: each hierarchy, mounted in the container's cgroup
        // namespace so that its root is the container's cgroup, on a tmpfs that
        // is then made read-only (runc's layout).
        if !host.cgroup2 && !spec.cgroup_mounts.is_empty() {
            let cg_ro = if spec.privileged || spec.writable_cgroups {
                0
            } else {
                MS_RDONLY
            };
            ops.push(mount(
                "tmpfs",
                "/sys/fs/cgroup",
                "tmpfs",
                MS_NOSUID | MS_NOEXEC | MS_NODEV,
                Some("mode=755"),
            )?);
            for (i, m) in spec.cgroup_mounts.iter().enumerate() {
                if m.name.is_empty() || m.name.contains('/') || m.name == ".." {
                    return Err(PlanError::BadMount(m.name.clone(), "not a hierarchy name"));
                }
                let target = format!("/sys/fs/cgroup/{}", m.name);
                ops.push(mkdir(&target, 0o755)?);
                if userns.is_some() {
                    // The container's own cgroup of each hierarchy, bound in.
                    let target = cstr("path", target)?;
                    ops.push(Op::MoveMountIfOpen {
                        slot: cgroup_slot + i,
                        target: target.clone(),
                    });
                    if cg_ro != 0 {
                        ops.push(Op::SetReadOnly {
                            path: target,
                            recursive: false,
                        });
                    }
                    continue;
                }
                ops.push(mount(
                    "cgroup",
                    &target,
                    &m.fstype,
                    MS_NOSUID | MS_NOEXEC | MS_NODEV | cg_ro,
                    (!m.options.is_empty()).then_some(m.options.as_str()),
                )?);
            }
            if cg_ro != 0 {
                ops.push(Op::SetReadOnly {
                    path: cstr("path", "/sys/fs/cgroup")?,
                    recursive: false,
                });
            }
        }
        // Kernel knobs, in the container's own namespaces, before /proc/sys is
        // made read-only below.
        let mut parent_sysctls = Vec::new();
        for (key, value) in &spec.sysctls {
            if key.is_empty()
                || key.split('.').any(|c| c.is_empty() || c == "..")
                || key.contains('/')
            {
                return Err(PlanError::BadMount(key.clone(), "not a sysctl name"));
            }
            let path = cstr("sysctl", format!("/proc/sys/{}", key.replace('.', "/")))?;
            let value = cstr("sysctl value", value.as_str())?;
            // berthd's network namespace belongs to the host's user namespace:
            // from the container's own, its knobs are read-only.
            if userns.is_some() && !private_net && key.starts_with("net.") {
                parent_sysctls.push((path, value));
            } else {
                ops.push(Op::Write { path, value });
            }
        }
        if let Some(adj) = p.oom_score_adj {
            ops.push(Op::Write {
                path: cstr("path", "/proc/self/oom_score_adj")?,
                value: cstr("oom_score_adj", adj.to_string())?,
            });
        }
        for (i, f) in spec.files.iter().enumerate() {
            let slot = file_slot + i;
            if let Some(parent) = Path::new(&f.destination).parent() {
                ops.push(mkdir(&parent.display().to_string(), 0o755)?);
            }
            ops.push(Op::Touch {
                path: cstr("path", f.destination.as_str())?,
            });
            ops.push(Op::MoveMount {
                slot,
                target: cstr("path", f.destination.as_str())?,
            });
            if f.readonly {
                ops.push(Op::RemountReadOnly {
                    path: cstr("path", f.destination.as_str())?,
                });
            }
        }
        let mut slot = bind_slot;
        for m in &spec.mounts {
            let target = cstr("mount destination", m.destination.as_str())?;
            let file = matches!(m.kind, MountKind::Bind { file: true, .. });
            // The mount point and its parents, made inside the new root.
            let mut prefix = String::new();
            let parts: Vec<&str> = m.destination.split('/').filter(|s| !s.is_empty()).collect();
            for (i, part) in parts.iter().enumerate() {
                prefix.push('/');
                prefix.push_str(part);
                if i + 1 < parts.len() || !file {
                    ops.push(mkdir(&prefix, 0o755)?);
                }
            }
            match &m.kind {
                MountKind::Bind { propagation, .. } => {
                    if file {
                        ops.push(Op::Touch {
                            path: target.clone(),
                        });
                    }
                    ops.push(Op::MoveMount {
                        slot,
                        target: target.clone(),
                    });
                    slot += 1;
                    let flags = match propagation.as_deref().unwrap_or("rprivate") {
                        "private" => libc::MS_PRIVATE,
                        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
                        "slave" => libc::MS_SLAVE,
                        "rslave" => libc::MS_SLAVE | libc::MS_REC,
                        "shared" => libc::MS_SHARED,
                        "rshared" => libc::MS_SHARED | libc::MS_REC,
                        _ => {
                            return Err(PlanError::BadMount(
                                m.destination.clone(),
                                "propagation must be private, rprivate, slave, rslave, shared or rshared",
                            ))
                        }
                    };
                    ops.push(Op::Propagation {
                        path: target.clone(),
                        flags,
                    });
                }
                MountKind::Tmpfs { options, exec } => {
                    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
                    if !exec {
                        flags |= libc::MS_NOEXEC;
                    }
                    ops.push(Op::Mount {
                        source: cstr("mount source", "tmpfs")?,
                        target: target.clone(),
                        fstype: cstr("filesystem type", "tmpfs")?,
                        flags,
                        data: (!options.is_empty())
                            .then(|| cstr("tmpfs options", options.as_str()))
                            .transpose()?,
                    });
                }
            }
            if m.readonly {
                ops.push(Op::SetReadOnly {
                    path: target,
                    recursive: true,
                });
            }
        }
        for m in &spec.masked_paths {
            ops.push(Op::Mask {
                path: cstr("masked path", m.as_str())?,
            });
        }
        for r in &spec.readonly_paths {
            ops.push(Op::ReadOnly {
                path: cstr("read-only path", r.as_str())?,
            });
        }
        // WORKDIR is created if missing, as Docker does, root-owned and 0755.
        let mut prefix = String::new();
        for part in p.cwd.split('/').filter(|s| !s.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            ops.push(mkdir(&prefix, 0o755)?);
        }
        // Last, so that the mount points and WORKDIR above could still be made.
        if spec.readonly_rootfs {
            ops.push(Op::SetReadOnly {
                path: cstr("path", "/")?,
                recursive: false,
            });
        }

        let ns = &spec.namespaces;
        let mut clone_flags = libc::CLONE_NEWNS;
        if ns.pid == NsSource::Private {
            clone_flags |= libc::CLONE_NEWPID;
        }
        if ns.ipc == NsSource::Private {
            clone_flags |= libc::CLONE_NEWIPC;
        }
        if !ns.uts_host {
            clone_flags |= libc::CLONE_NEWUTS;
        }
        if spec.network == NetworkMode::Private {
            clone_flags |= libc::CLONE_NEWNET;
        }
        let mut plan = Plan::for_process(p, host)?;
        plan.clone_flags = clone_flags;
        plan.new_cgroupns = !ns.cgroup_host;
        plan.loopback_up = spec.network == NetworkMode::Private;
        plan.bind_console = p.terminal;
        plan.ops = ops;
        plan.prepare = prepare;
        plan.parent_sysctls = parent_sysctls;
        if let Some(map) = userns {
            if !spec.namespaces.user_join {
                plan.clone_flags |= libc::CLONE_NEWUSER;
            }
            plan.rlimits_by_parent = true;
            plan.userns = Some(UserNs {
                uid_map: cstr("uid map", IdMap::proc_text(&map.uids))?,
                gid_map: cstr("gid map", IdMap::proc_text(&map.gids))?,
                root_uid: IdMap::to_host(&map.uids, 0).ok_or(PlanError::BadMount(
                    "uid 0".into(),
                    "the user namespace must map the container's root",
                ))?,
                root_gid: IdMap::to_host(&map.gids, 0).ok_or(PlanError::BadMount(
                    "gid 0".into(),
                    "the user namespace must map the container's root",
                ))?,
            });
        }
        // In the host's UTS namespace the host's names are never touched.
        if !ns.uts_host {
            plan.hostname = cstr("hostname", spec.hostname.as_str())?;
            plan.domainname = cstr("domainname", spec.domainname.as_str())?;
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
