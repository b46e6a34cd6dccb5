//! The user-namespace side of [`super::spawn`] (`--userns-remap`): the throwaway
//! namespace ID maps are made from, the trees the shim prepares as the host's root
//! (ID-mapped layers and the overlay over them), the child's maps and rlimits, and
//! the helper that clones a child into another container's user namespace.

use super::child::{child_main, send_fd, ChildFds};
use super::{
    errno, fork_with, pipe_cloexec, recv_fd, wait_helper, CloneArgs, CLONE_INTO_CGROUP, CLONE_PIDFD,
};
use crate::plan::{Plan, Prepare, UserNs};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Returns to the namespaces left for clone, in reverse order. A failure here
/// would leave the shim in a container's namespace: it aborts rather than go on.
pub(super) fn restore_namespaces(restore: &[(OwnedFd, libc::c_int)]) {
    for (fd, nstype) in restore.iter().rev() {
        // SAFETY: `fd` is this thread's own former namespace, opened above.
        if unsafe { libc::setns(fd.as_raw_fd(), *nstype) } < 0 {
            std::process::abort();
        }
    }
}

pub(super) fn kill_and_reap(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    }
}

/// Writes the child's uid and gid maps (as the host's root: no `setgroups` deny
/// needed, and any range of the host's).
pub(super) fn write_maps(pid: i32, u: &UserNs) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/uid_map"), u.uid_map.as_bytes())?;
    std::fs::write(format!("/proc/{pid}/gid_map"), u.gid_map.as_bytes())
}

/// Sets the plan's rlimits on the held child with prlimit(2).
pub(super) fn set_rlimits(pid: i32, plan: &Plan) -> io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(io::ErrorKind::InvalidInput)?;
    for (resource, soft, hard) in &plan.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        // SAFETY: `lim` lives on this stack for the call; the old value is not asked for.
        let r = unsafe {
            libc::prlimit(
                pid.as_raw_nonzero().get(),
                *resource as _,
                &lim,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A user namespace with `u`'s mapping, to ID-map mounts with: a short-lived child
/// enters it and waits while the maps are written.
pub(super) fn mapping_userns(u: &UserNs) -> io::Result<OwnedFd> {
    let (r, w) = pipe_cloexec()?;
    // SAFETY: this process is single-threaded; the child only reads the pipe and
    // _exits.
    let pid = unsafe { fork_with(libc::CLONE_NEWUSER)? };
    if pid == 0 {
        // SAFETY: the fresh child: closes its copy of the write end (or the read
        // would never end), reads the inherited pipe, then _exits.
        unsafe {
            libc::close(w.as_raw_fd());
            let mut b = 0u8;
            libc::read(r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0)
        }
    }

    let res = write_maps(pid, u).and_then(|()| {
        rustix::fs::open(
            format!("/proc/{pid}/ns/user"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(io::Error::from)
    });
    drop(w);
    wait_helper(pid);
    res
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// ID-maps the detached tree `fd` (and the mounts below it when `recursive`)
/// through `userns`.
pub(super) fn idmap(fd: BorrowedFd<'_>, userns: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr of the size passed, alive for the call;
    // the path is an empty NUL-terminated string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a detached copy of `source` (its mounts below too when `recursive`).
pub(super) fn clone_tree(source: &CStr, recursive: bool, nofollow: bool) -> io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if nofollow {
        // Resolved without following any link, then cloned by its descriptor.
        let base = rustix::fs::openat2(
            rustix::fs::CWD,
            source,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::NO_SYMLINKS,
        )?;
        return Ok(rustix::mount::open_tree(
            &base,
            c"",
            flags | OpenTreeFlags::AT_EMPTY_PATH,
        )?);
    }
    Ok(rustix::mount::open_tree(rustix::fs::CWD, source, flags)?)
}

/// Performs one [`Prepare`] step: the tree for its slot (None for a missing
/// optional source).
pub(super) fn prepare(
    p: &Prepare,
    u: &UserNs,
    mapping: BorrowedFd<'_>,
) -> io::Result<Option<OwnedFd>> {
    match p {
        Prepare::Tree {
            source,
            recursive,
            idmap: map,
            optional,
            nofollow,
            ..
        } => {
            let fd = match clone_tree(source, *recursive, *nofollow) {
                Err(e) if *optional && e.kind() == io::ErrorKind::NotFound => return Ok(None),
                r => r?,
            };
            if *map {
                idmap(fd.as_fd(), mapping, *recursive)?;
            }
            Ok(Some(fd))
        }
        Prepare::Overlay {
            lower,
            rw,
            upper,
            work,
            nodev,
            ..
        } => {
            let mut layers = Vec::with_capacity(lower.len());
            for l in lower {
                let fd = clone_tree(l, false, false)?;
                idmap(fd.as_fd(), mapping, false)?;
                layers.push(fd);
            }
            let rw = clone_tree(rw, false, false)?;
            idmap(rw.as_fd(), mapping, false)?;
            let dir = |name: &CStr| {
                rustix::fs::openat(
                    &rw,
                    name,
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
            };
            let (upper, work) = (dir(upper)?, dir(work)?);
            as_container_root(u, || {
                use rustix::mount::{
                    fsconfig_create, fsconfig_set_fd, fsmount, fsopen, FsMountFlags, FsOpenFlags,
                    MountAttrFlags,
                };
                let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
                for l in &layers {
                    fsconfig_set_fd(&fs, "lowerdir+", l)?;
                }
                fsconfig_set_fd(&fs, "upperdir", &upper)?;
                fsconfig_set_fd(&fs, "workdir", &work)?;
                fsconfig_create(&fs)?;
                let attrs = if *nodev {
                    MountAttrFlags::MOUNT_ATTR_NODEV
                } else {
                    MountAttrFlags::empty()
                };
                Ok(Some(fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?))
            })
        }
    }
}

/// Runs `f` on this thread with `uid` and `gid` as its file-system IDs and its
/// capabilities kept: berthd writing into a running remapped container (`docker
/// cp`), whose ID-mapped mounts refuse files made as the host's root. `f` must
/// not move to another thread (no await inside).
pub fn with_fs_ids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> io::Result<T> {
    let u = UserNs {
        uid_map: Default::default(),
        gid_map: Default::default(),
        root_uid: uid,
        root_gid: gid,
    };
    as_container_root(&u, || Ok(f()))
}

/// Runs `f` with the container root's host IDs as this thread's file-system IDs,
/// capabilities kept (SECBIT_NO_SETUID_FIXUP): an overlay made meanwhile keeps
/// these credentials for its own work (copy-up, whiteouts, its work directory),
/// which the ID-mapped layers then store as the container's root, ID 0, on disk.
pub(super) fn as_container_root<T>(u: &UserNs, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let _ids = FsIds::set(u.root_uid, u.root_gid)?;
    f()
}

/// This thread's file-system IDs set to others, capabilities kept, until drop
/// (which runs on unwinding too: a pool thread of berthd's must never stay so).
struct FsIds {
    bits: rustix::thread::CapabilitiesSecureBits,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl FsIds {
    fn set(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<FsIds> {
        use rustix::thread::{
            capabilities_secure_bits, set_capabilities_secure_bits, CapabilitiesSecureBits,
        };
        let bits = capabilities_secure_bits()?;
        set_capabilities_secure_bits(bits | CapabilitiesSecureBits::NO_SETUID_FIXUP)?;
        // SAFETY: setfsuid/setfsgid change only this thread's file-system IDs and
        // return the previous ones, which drop puts back.
        let (old_gid, old_uid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
        Ok(FsIds {
            bits,
            uid: old_uid as libc::uid_t,
            gid: old_gid as libc::gid_t,
        })
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        // SAFETY: as in set: this thread's own file-system IDs, back to its own.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
        // A thread that cannot get its securebits back must not run anything else.
        if rustix::thread::set_capabilities_secure_bits(self.bits).is_err() {
            std::process::abort();
        }
    }
}

/// What the helper of a child joining another container's user namespace needs.
pub(super) struct Helper3<'a> {
    pub(super) plan: &'a Plan,
    pub(super) argv: &'a [*const libc::c_char],
    pub(super) envp: &'a [*const libc::c_char],
    pub(super) fds: ChildFds,
    pub(super) cgroup: Option<RawFd>,
    pub(super) userns: RawFd,
}

const CLONE_PARENT: u64 = libc::CLONE_PARENT as u64;

impl Helper3<'_> {
    /// Forks a helper that enters the plan's `parent_ns` (while it is still the
    /// host's root, so any namespace can be entered), writes `parent_sysctls`,
    /// enters the user namespace, then clones the child with CLONE_PARENT: the
    /// child is ours, its new namespaces are owned by that user namespace. The
    /// helper hands back the child's pidfd, or the errno it failed with.
    pub(super) fn run(self) -> io::Result<OwnedFd> {
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        // SAFETY: this process is single-threaded; the helper runs `helper`, which
        // only makes syscalls until it _exits.
        let h = unsafe { fork_with(0)? };
        if h == 0 {
            // SAFETY: the helper: syscalls on the plan's fds and strings, then
            // _exit; the child runs child_main as spawn_child's would.
            unsafe { self.helper(theirs.as_raw_fd()) }
        }
        drop(theirs);
        wait_helper(h);
        let mut buf = [0u8; 4];
        match recv_fd(&ours) {
            Ok(fd) => Ok(fd),
            Err(_) => {
                let n = rustix::io::read(&ours, &mut buf).unwrap_or(0);
                let errno = if n == 4 {
                    i32::from_ne_bytes(buf)
                } else {
                    libc::EIO
                };
                Err(io::Error::new(
                    io::Error::from_raw_os_error(errno).kind(),
                    format!(
                        "joining the user namespace of the container whose namespaces are shared: {}",
                        io::Error::from_raw_os_error(errno)
                    ),
                ))
            }
        }
    }

    /// # Safety
    /// Only in the forked helper.
    unsafe fn helper(self, sock: RawFd) -> ! {
        // SAFETY: plain syscalls on descriptors and NUL-terminated strings of the
        // plan, and on stack buffers alive for each call.
        unsafe {
            let fail = |e: i32| -> ! {
                // One byte without a descriptor (what recv_fd takes), then the errno.
                let mut msg = [0u8; 5];
                msg[1..].copy_from_slice(&e.to_ne_bytes());
                libc::write(sock, msg.as_ptr().cast(), msg.len());
                libc::_exit(1)
            };
            for (fd, t) in &self.plan.parent_ns {
                if libc::setns(*fd, *t) < 0 {
                    fail(errno());
                }
            }
            for (path, value) in &self.plan.parent_sysctls {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    fail(errno());
                }
                let v = value.as_bytes();
                if libc::write(fd, v.as_ptr().cast(), v.len()) < 0 {
                    fail(errno());
                }
                libc::close(fd);
            }
            if libc::setns(self.userns, libc::CLONE_NEWUSER) < 0 {
                fail(errno());
            }
            let mut pidfd: libc::c_int = -1;
            let mut flags = self.plan.clone_flags as u64 | CLONE_PIDFD | CLONE_PARENT;
            if self.cgroup.is_some() {
                flags |= CLONE_INTO_CGROUP;
            }
            let args = CloneArgs {
                flags,
                pidfd: (&mut pidfd as *mut libc::c_int) as u64,
                // With CLONE_PARENT the child's exit signal is the helper's own
                // (SIGCHLD); clone3 refuses one given.
                exit_signal: 0,
                cgroup: self.cgroup.unwrap_or(0) as u64,
                ..CloneArgs::default()
            };
            let pid = libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            );
            if pid < 0 {
                fail(errno());
            }
            if pid == 0 {
                child_main(self.plan, self.argv, self.envp, self.fds)
            }
            if let Err(e) = send_fd(sock, pidfd) {
                fail(e);
            }
            libc::_exit(0)
        }
    }
}

/// The pid (in our PID namespace) of the process a pidfd names, from its fdinfo.
pub(super) fn pid_of(pidfd: &OwnedFd) -> io::Result<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .filter(|p: &i32| *p > 0)
        .ok_or_else(|| io::Error::other("the child's pid is not in its pidfd's fdinfo"))
}
