//! The steps of a plan: what the child does between clone and exec, in order.

use std::ffi::CString;
use std::os::fd::RawFd;

/// One step of the child's setup. Its `describe()` names it in error messages.
#[derive(Debug)]
pub enum Op {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`: nothing of ours propagates to the host.
    MakePrivate,
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// `open_tree(OPEN_TREE_CLONE)` of a host path before pivot_root (with
    /// `AT_RECURSIVE` when `recursive`), kept in slot `slot` for a later
    /// [`Op::MoveMount`].
    OpenTree {
        source: CString,
        slot: usize,
        recursive: bool,
        /// Resolve `source` without following any symbolic link.
        nofollow: bool,
    },
    /// `setns` into a namespace given as an open fd (`docker exec`).
    SetNs {
        fd: RawFd,
        nstype: libc::c_int,
    },
    /// `move_mount` of a tree opened earlier onto a path inside the container: the
    /// target resolves in the new root, the source was resolved on the host.
    MoveMount {
        slot: usize,
        target: CString,
    },
    /// chdir into the new root, pivot_root(".", "."), detach the old root.
    PivotRoot {
        new_root: CString,
    },
    /// The same with a root the parent prepared (a user namespace's): fchdir into
    /// the tree of `slot`, already moved into place, then pivot_root as above. No
    /// host path is resolved from inside the user namespace.
    PivotRootTree {
        slot: usize,
    },
    /// A new instance of `fstype` (fsopen, fsmount with the `MOUNT_ATTR_*` bits
    /// `attrs`), kept detached in slot `slot` for a later [`Op::MoveMount`].
    FsMount {
        fstype: CString,
        slot: usize,
        attrs: u32,
    },
    /// setresgid(0, 0, 0) and setresuid(0, 0, 0) in the child's user namespace:
    /// from here on files are made as the container's root (the host's root
    /// has no ID inside, and the ID-mapped mounts refuse to write as it).
    BecomeRoot,
    /// [`Op::MoveMount`] when the parent found the tree (a cgroup hierarchy in
    /// which the container has a cgroup), nothing otherwise.
    MoveMountIfOpen {
        slot: usize,
        target: CString,
    },
    /// mkdir, tolerating an existing entry.
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
    /// Creates an empty file to bind over, tolerating an existing one.
    Touch {
        path: CString,
    },
    Mknod {
        path: CString,
        mode: libc::mode_t,
        dev: libc::dev_t,
    },
    /// lchown: a device node gets its host node's owner.
    Chown {
        path: CString,
        uid: libc::uid_t,
        gid: libc::gid_t,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Hides a path: a read-only tmpfs over a directory, /dev/null over a file.
    Mask {
        path: CString,
    },
    /// Remounts a path read-only (a bind of itself).
    ReadOnly {
        path: CString,
    },
    /// Makes a bind mount that is already in place read-only, keeping exec.
    RemountReadOnly {
        path: CString,
    },
    /// `mount_setattr(MOUNT_ATTR_RDONLY)`: read-only, every other flag kept; with
    /// `recursive`, for the mounts below too.
    SetReadOnly {
        path: CString,
        recursive: bool,
    },
    /// Sets a mount's propagation (`MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED`, with
    /// `MS_REC` for the r- kinds).
    Propagation {
        path: CString,
        flags: libc::c_ulong,
    },
    /// Writes `value` to an existing file (a sysctl under /proc/sys, the
    /// process's oom_score_adj), inside the container.
    Write {
        path: CString,
        value: CString,
    },
}

/// A tree the parent opens before clone, as the host's root, for a child in a user
/// namespace of its own: from inside it the child could neither reach every host
/// path nor mount the image's overlay with its owners intact.
#[derive(Debug)]
pub enum Prepare {
    /// `open_tree(OPEN_TREE_CLONE)` of `source` (`AT_RECURSIVE` when `recursive`),
    /// seen through the container's ID mapping when `idmap`. An `optional` source
    /// that does not exist leaves the slot empty.
    Tree {
        slot: usize,
        source: CString,
        recursive: bool,
        idmap: bool,
        optional: bool,
        /// Resolve `source` without following any symbolic link.
        nofollow: bool,
    },
    /// The container's root: an overlay of the image layers and the writable layer
    /// (`upper` and `work`, both in directory `rw`), each seen through the ID
    /// mapping, made with the container root's host IDs as file-system IDs so that
    /// everything written keeps the container's own IDs on disk.
    Overlay {
        slot: usize,
        lower: Vec<CString>,
        rw: CString,
        upper: CString,
        work: CString,
        nodev: bool,
    },
}

impl Prepare {
    pub fn slot(&self) -> usize {
        match self {
            Prepare::Tree { slot, .. } | Prepare::Overlay { slot, .. } => *slot,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Prepare::Tree { source, .. } => {
                format!("opening {} to bind", source.to_string_lossy())
            }
            Prepare::Overlay { rw, .. } => {
                format!("mounting the ID-mapped overlay of {}", rw.to_string_lossy())
            }
        }
    }
}

impl Op {
    pub fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Op::MakePrivate => "making the mount tree private".into(),
            Op::Mount { fstype, target, .. } if fstype.as_bytes().is_empty() => {
                format!("bind-mounting {}", s(target))
            }
            Op::Mount { fstype, target, .. } => format!("mounting {} on {}", s(fstype), s(target)),
            Op::OpenTree { source, .. } => format!("opening {} to bind", s(source)),
            Op::MoveMount { target, .. } => format!("bind-mounting {}", s(target)),
            Op::SetNs { nstype, .. } => format!("joining the container's namespace {nstype:#x}"),
            Op::PivotRoot { new_root } => format!("pivot_root to {}", s(new_root)),
            Op::PivotRootTree { .. } => "pivot_root to the container's root".into(),
            Op::FsMount { fstype, .. } => format!("making a {} file system", s(fstype)),
            Op::BecomeRoot => "becoming the user namespace's root".into(),
            Op::MoveMountIfOpen { target, .. } => format!("bind-mounting {}", s(target)),
            Op::Mkdir { path, .. } => format!("creating directory {}", s(path)),
            Op::Touch { path } => format!("creating mount point {}", s(path)),
            Op::Mknod { path, .. } => format!("creating device {}", s(path)),
            Op::Chown { path, .. } => format!("setting the owner of {}", s(path)),
            Op::Symlink { link, .. } => format!("creating symlink {}", s(link)),
            Op::Mask { path } => format!("masking {}", s(path)),
            Op::ReadOnly { path } | Op::RemountReadOnly { path } | Op::SetReadOnly { path, .. } => {
                format!("making {} read-only", s(path))
            }
            Op::Propagation { path, .. } => format!("setting the propagation of {}", s(path)),
            Op::Write { path, value } => format!("writing {} to {}", s(value), s(path)),
        }
    }
}
