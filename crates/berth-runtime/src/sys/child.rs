//! The container child's side of [`super::spawn`]: everything between clone and
//! exec. It runs in a copy of a single-threaded shim and only issues syscalls on
//! data prepared beforehand in the [`Plan`] and on the stack: it never
//! allocates, logs or takes a lock.

use super::*;

/// Reports a failed step to the parent and exits. Async-signal-safe.
///
/// # Safety
/// Only to be called in the cloned child.
unsafe fn fail(report: RawFd, step: i32, errno: i32) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&step.to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: buf lives on our stack for the duration of the call.
    unsafe {
        libc::write(report, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

fn opt_ptr(c: &Option<std::ffi::CString>) -> *const libc::c_void {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr().cast())
}

/// The descriptors a child starts with: the release pipe, the report pipe, its
/// stdio, the terminal's socket (-1 without), the trees its parent prepared.
pub(super) struct ChildFds {
    pub sync: RawFd,
    pub report: RawFd,
    pub stdio: [RawFd; 3],
    pub console: RawFd,
    pub trees: [RawFd; crate::plan::MAX_TREES],
}

/// The container child: wait for release, set up, exec.
///
/// # Safety
/// Must only run in the child of [`spawn`], with `argv`/`envp` NULL-terminated
/// arrays of pointers into `plan`.
pub(super) unsafe fn child_main(
    plan: &Plan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fds: ChildFds,
) -> ! {
    let ChildFds {
        sync,
        report,
        stdio,
        console,
        mut trees,
    } = fds;
    // SAFETY: every call below is a plain syscall wrapper on fds we own in this
    // child, on NUL-terminated strings owned by `plan` (alive in our copy of the
    // address space), or on stack buffers that outlive the call.
    unsafe {
        let mut b = 0u8;
        loop {
            let n = libc::read(sync, (&mut b as *mut u8).cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            // The parent went away before releasing us.
            libc::_exit(1);
        }
        // Join the v1 hierarchies by moving this (only) thread: see
        // Cgroup::v1_task_files for why not cgroup.procs from the parent.
        for tasks in &plan.cgroup_tasks {
            let fd = libc::open(tasks.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(report, step::CGROUP_JOIN, errno());
            }
            libc::close(fd);
        }
        if libc::setsid() < 0 {
            fail(report, step::SETSID, errno());
        }
        // After the parent put us into our cgroup, so that it becomes our root.
        if plan.new_cgroupns && libc::unshare(libc::CLONE_NEWCGROUP) < 0 {
            fail(report, step::CGROUPNS, errno());
        }
        for (target, fd) in stdio.iter().enumerate() {
            if libc::dup2(*fd, target as RawFd) < 0 {
                fail(report, step::STDIO, errno());
            }
        }
        // From here on the child holds nothing of the host's but what the steps
        // below use: the report pipe, the terminal's socket and the namespaces to
        // enter. Every other descriptor (the shim's, the cgroup directory, whatever
        // berthd inherited) is closed, so no path through /proc/self/fd leads out.
        let mut keep = [-1 as RawFd; MAX_KEPT_FDS];
        keep[0] = report;
        keep[1] = console;
        let mut n = 2;
        for op in &plan.ops {
            if let Op::SetNs { fd, .. } = op {
                if n < MAX_KEPT_FDS {
                    keep[n] = *fd;
                    n += 1;
                }
            }
        }
        // The trees the parent prepared (a user namespace's child).
        for fd in trees {
            if fd >= 0 && n < MAX_KEPT_FDS {
                keep[n] = fd;
                n += 1;
            }
        }
        if let Err(e) = close_all_but(&mut keep[..n]) {
            fail(report, step::CLOSE_FDS, e);
        }

        libc::umask(0);
        for (i, op) in plan.ops.iter().enumerate() {
            if let Err(e) = run_op(op, &mut trees) {
                fail(report, i as i32, e);
            }
        }
        for fd in trees {
            if fd >= 0 {
                libc::close(fd);
            }
        }
        if plan.controlling_tty {
            if let Err(e) = terminal(plan, console) {
                fail(report, step::TERMINAL, e);
            }
        }
        if plan.loopback_up {
            if let Err(e) = loopback_up() {
                fail(report, step::LOOPBACK, e);
            }
        }
        let h = plan.hostname.as_bytes();
        if !h.is_empty() && libc::sethostname(plan.hostname.as_ptr(), h.len()) < 0 {
            fail(report, step::HOSTNAME, errno());
        }
        let d = plan.domainname.as_bytes();
        if !d.is_empty() && libc::setdomainname(plan.domainname.as_ptr(), d.len()) < 0 {
            fail(report, step::HOSTNAME, errno());
        }
        libc::umask(0o022);
        // The last descriptor of the host's goes: only 0, 1, 2 and the close-on-exec
        // report pipe remain, and the pipe is gone at exec.
        let mut keep = [report];
        if let Err(e) = close_all_but(&mut keep) {
            fail(report, step::CLOSE_FDS, e);
        }
        for cap in &plan.cap_drop {
            if libc::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) < 0
                && errno() != libc::EINVAL
            {
                fail(report, step::CAPBSET, errno());
            }
        }
        for (resource, soft, hard) in plan.rlimits.iter().filter(|_| !plan.rlimits_by_parent) {
            let lim = libc::rlimit {
                rlim_cur: *soft,
                rlim_max: *hard,
            };
            if libc::setrlimit(*resource as _, &lim) < 0 {
                fail(report, step::RLIMITS, errno());
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if plan.no_new_privs
            && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) < 0
        {
            fail(report, step::NO_NEW_PRIVS, errno());
        }
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN to load a filter: load
        // it now, while the capabilities are still there (runc's order).
        if !plan.no_new_privs {
            if let Err(e) = load_seccomp(plan) {
                fail(report, step::SECCOMP, e);
            }
        }
        if libc::setgroups(plan.groups.len(), plan.groups.as_ptr()) < 0 {
            fail(report, step::SETGROUPS, errno());
        }
        if libc::setgid(plan.gid) < 0 {
            fail(report, step::SETGID, errno());
        }
        if libc::setuid(plan.uid) < 0 {
            fail(report, step::SETUID, errno());
        }
        if capset(plan.cap_mask) < 0 {
            fail(report, step::CAPSET, errno());
        }
        if let Err((step, e)) = enter_cwd(plan) {
            fail(report, step, e);
        }
        // Dispositions set to "ignore" survive exec (the shim's runtime ignores
        // SIGPIPE): give the program the defaults and an empty mask.
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // With no_new_privs, as late as possible: the filter then applies to as
        // little of berth's own code as can be.
        if plan.no_new_privs {
            if let Err(e) = load_seccomp(plan) {
                fail(report, step::SECCOMP, e);
            }
        }

        let mut last = libc::ENOENT;
        for cand in &plan.exec_candidates {
            libc::execve(cand.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let e = errno();
            // Like execvp: a missing entry moves on, a real failure is remembered.
            if e != libc::ENOENT && e != libc::ENOTDIR {
                last = e;
            }
        }
        fail(report, step::EXEC, last)
    }
}

/// How many descriptors the child keeps while it sets up (report, terminal socket,
/// namespaces to enter, trees the parent prepared).
const MAX_KEPT_FDS: usize = 16 + crate::plan::MAX_TREES;

/// Closes every descriptor from 3 up except those in `keep` (sorted here, in place).
/// Async-signal-safe: no allocation.
///
/// # Safety
/// Only in the cloned child: it closes descriptors other code may think it owns.
unsafe fn close_all_but(keep: &mut [RawFd]) -> Result<(), i32> {
    // Insertion sort: a handful of entries, no allocation.
    for i in 1..keep.len() {
        let mut j = i;
        while j > 0 && keep[j - 1] > keep[j] {
            keep.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut low: RawFd = 3;
    for &k in keep.iter() {
        if k < low {
            continue;
        }
        if k > low {
            // SAFETY: close_range only closes descriptors of this child.
            unsafe { close_range(low, k - 1)? };
        }
        low = k + 1;
    }
    // SAFETY: as above.
    unsafe { close_range(low, RawFd::MAX) }
}

/// close_range(2), or a loop of close(2) up to the descriptor limit where the
/// kernel lacks it (before 5.9).
///
/// # Safety
/// Only in the cloned child (see [`close_all_but`]).
unsafe fn close_range(low: RawFd, high: RawFd) -> Result<(), i32> {
    // SAFETY: plain syscalls on integers and a stack struct.
    unsafe {
        let r = libc::syscall(
            libc::SYS_close_range,
            low as libc::c_uint,
            high as libc::c_uint,
            0 as libc::c_uint,
        );
        if r == 0 {
            return Ok(());
        }
        if errno() != libc::ENOSYS {
            return Err(errno());
        }
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) < 0 {
            return Err(errno());
        }
        let top = (lim.rlim_cur.min(1 << 20) as RawFd).min(high.saturating_add(1));
        for fd in low..top {
            libc::close(fd);
        }
        Ok(())
    }
}

/// Enters the working directory inside the container's root: resolved with
/// openat2(RESOLVE_NO_MAGICLINKS), so that no /proc/<pid>/fd, cwd or root link can
/// lead outside, then checked with getcwd(2), which the kernel prefixes with
/// "(unreachable)" when the directory is not below the process's root.
///
/// # Safety
/// Only in the cloned child (async-signal-safe: stack data and syscalls only).
unsafe fn enter_cwd(plan: &Plan) -> Result<(), (i32, i32)> {
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    // SAFETY: plain syscalls on the plan's NUL-terminated string and stack buffers
    // that outlive each call.
    unsafe {
        let how = OpenHow {
            flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_NO_MAGICLINKS,
        };
        let fd = libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            plan.cwd.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        ) as RawFd;
        if fd >= 0 {
            let r = libc::fchdir(fd);
            let e = errno();
            libc::close(fd);
            if r < 0 {
                return Err((step::CHDIR, e));
            }
        } else if errno() == libc::ENOSYS {
            // Before 5.6: nothing of the host's is open any more, so no magic link
            // can point outside; the getcwd check below still holds.
            if libc::chdir(plan.cwd.as_ptr()) < 0 {
                return Err((step::CHDIR, errno()));
            }
        } else {
            return Err((step::CHDIR, errno()));
        }
        let mut buf = [0u8; 4096];
        let r = libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len());
        if r < 0 {
            let e = errno();
            // A path longer than the buffer is still a path inside the root.
            if e != libc::ENAMETOOLONG && e != libc::ERANGE {
                return Err((step::CWD_OUTSIDE, e));
            }
        } else if buf[0] != b'/' {
            return Err((step::CWD_OUTSIDE, libc::EPERM));
        }
        Ok(())
    }
}

/// Loads the plan's seccomp filter, if it has one.
///
/// # Safety
/// Only in the cloned child (async-signal-safe: the program is in the plan).
unsafe fn load_seccomp(plan: &Plan) -> Result<(), i32> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    let Some(filter) = &plan.seccomp else {
        return Ok(());
    };
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        // Insn is repr(C) with struct sock_filter's fields, in its order.
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at the plan's instructions, alive for the call; the
    // kernel copies them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            plan.seccomp_flags as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// # Safety
/// Only in the cloned child, on strings owned by the plan. `trees` holds the fds of
/// trees opened by earlier ops (-1 when empty).
unsafe fn run_op(op: &Op, trees: &mut [RawFd; crate::plan::MAX_TREES]) -> Result<(), i32> {
    // SAFETY: see child_main; all pointers come from CStrings in `op` or the stack.
    unsafe {
        let ok = |r: libc::c_int| if r < 0 { Err(errno()) } else { Ok(()) };
        match op {
            Op::MakePrivate => ok(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )),
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => ok(libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                if fstype.as_bytes().is_empty() {
                    std::ptr::null()
                } else {
                    fstype.as_ptr()
                },
                *flags,
                opt_ptr(data),
            )),
            Op::OpenTree {
                source,
                slot,
                recursive,
                nofollow,
            } => {
                let rec = if *recursive {
                    libc::AT_RECURSIVE as libc::c_uint
                } else {
                    0
                };
                let fd = if *nofollow {
                    // Resolved without following any link, then cloned by its
                    // descriptor: nothing swapped into the path redirects it.
                    #[repr(C)]
                    struct OpenHow {
                        flags: u64,
                        mode: u64,
                        resolve: u64,
                    }
                    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
                    let how = OpenHow {
                        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
                        mode: 0,
                        resolve: RESOLVE_NO_SYMLINKS,
                    };
                    let base = libc::syscall(
                        libc::SYS_openat2,
                        libc::AT_FDCWD,
                        source.as_ptr(),
                        &how as *const OpenHow,
                        std::mem::size_of::<OpenHow>(),
                    ) as RawFd;
                    if base < 0 {
                        return Err(errno());
                    }
                    let fd = libc::syscall(
                        libc::SYS_open_tree,
                        base,
                        c"".as_ptr(),
                        OPEN_TREE_CLONE
                            | libc::O_CLOEXEC as libc::c_uint
                            | libc::AT_EMPTY_PATH as libc::c_uint
                            | rec,
                    ) as RawFd;
                    let e = errno();
                    libc::close(base);
                    if fd < 0 {
                        return Err(e);
                    }
                    fd
                } else {
                    libc::syscall(
                        libc::SYS_open_tree,
                        libc::AT_FDCWD,
                        source.as_ptr(),
                        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | rec,
                    ) as RawFd
                };
                if fd < 0 {
                    return Err(errno());
                }
                trees[*slot] = fd;
                Ok(())
            }
            Op::MoveMount { slot, target } => ok(move_tree(trees[*slot], target)),
            Op::MoveMountIfOpen { slot, target } if trees[*slot] >= 0 => {
                ok(move_tree(trees[*slot], target))
            }
            Op::MoveMountIfOpen { .. } => Ok(()),
            Op::PivotRootTree { slot } => {
                // The tree was moved onto the mount point: its descriptor now
                // names the mounted root, entered without resolving a path.
                ok(libc::fchdir(trees[*slot]))?;
                let dot = c".".as_ptr();
                ok(libc::syscall(libc::SYS_pivot_root, dot, dot) as libc::c_int)?;
                ok(libc::umount2(dot, libc::MNT_DETACH))?;
                ok(libc::chdir(c"/".as_ptr()))
            }
            Op::FsMount {
                fstype,
                slot,
                attrs,
            } => {
                const FSOPEN_CLOEXEC: libc::c_uint = 1;
                const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
                const FSMOUNT_CLOEXEC: libc::c_uint = 1;
                let fs = libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) as RawFd;
                if fs < 0 {
                    return Err(errno());
                }
                let r = libc::syscall(
                    libc::SYS_fsconfig,
                    fs,
                    FSCONFIG_CMD_CREATE,
                    std::ptr::null::<libc::c_char>(),
                    std::ptr::null::<libc::c_void>(),
                    0,
                );
                let m = if r < 0 {
                    -1
                } else {
                    libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, *attrs) as RawFd
                };
                let e = errno();
                libc::close(fs);
                if m < 0 {
                    return Err(e);
                }
                trees[*slot] = m;
                Ok(())
            }
            Op::BecomeRoot => {
                ok(libc::setresgid(0, 0, 0))?;
                ok(libc::setresuid(0, 0, 0))
            }
            Op::SetNs { fd, nstype } => ok(libc::setns(*fd, *nstype)),
            Op::PivotRoot { new_root } => {
                ok(libc::chdir(new_root.as_ptr()))?;
                let dot = c".".as_ptr();
                ok(libc::syscall(libc::SYS_pivot_root, dot, dot) as libc::c_int)?;
                ok(libc::umount2(dot, libc::MNT_DETACH))?;
                ok(libc::chdir(c"/".as_ptr()))
            }
            Op::Mkdir { path, mode } => match ok(libc::mkdir(path.as_ptr(), *mode)) {
                Err(libc::EEXIST) => Ok(()),
                r => r,
            },
            Op::Touch { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if fd < 0 {
                    return Err(errno());
                }
                libc::close(fd);
                Ok(())
            }
            Op::Mknod { path, mode, dev } => match ok(libc::mknod(path.as_ptr(), *mode, *dev)) {
                Err(libc::EEXIST) => Ok(()),
                r => r,
            },
            Op::Chown { path, uid, gid } => ok(libc::lchown(path.as_ptr(), *uid, *gid)),
            Op::Write { path, value } => {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(errno());
                }
                let bytes = value.as_bytes();
                let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
                let e = errno();
                libc::close(fd);
                if n < 0 {
                    Err(e)
                } else {
                    Ok(())
                }
            }
            Op::Symlink { target, link } => {
                match ok(libc::symlink(target.as_ptr(), link.as_ptr())) {
                    Err(libc::EEXIST) => Ok(()),
                    r => r,
                }
            }
            Op::Mask { path } => {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(path.as_ptr(), &mut st) < 0 {
                    return match errno() {
                        libc::ENOENT => Ok(()),
                        e => Err(e),
                    };
                }
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    ok(libc::mount(
                        c"tmpfs".as_ptr(),
                        path.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY,
                        std::ptr::null(),
                    ))
                } else {
                    ok(libc::mount(
                        c"/dev/null".as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))
                }
            }
            Op::SetReadOnly { path, recursive } => {
                let attr = MountAttr {
                    attr_set: MOUNT_ATTR_RDONLY,
                    ..MountAttr::default()
                };
                let flags = if *recursive { libc::AT_RECURSIVE } else { 0 };
                ok(libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    flags as libc::c_uint,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                ) as libc::c_int)
            }
            Op::Propagation { path, flags } => ok(libc::mount(
                std::ptr::null(),
                path.as_ptr(),
                std::ptr::null(),
                *flags,
                std::ptr::null(),
            )),
            Op::RemountReadOnly { path } => ok(libc::mount(
                std::ptr::null(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )),
            Op::ReadOnly { path } => {
                match ok(libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )) {
                    Err(libc::ENOENT) => return Ok(()),
                    r => r?,
                }
                // Keep the flags of the /proc mount these paths live on.
                ok(libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND
                        | libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))
            }
        }
    }
}

/// move_mount(2) of the detached tree `fd` onto `target`, resolved in the
/// caller's root.
///
/// # Safety
/// Only in the cloned child, with `target` a NUL-terminated string of the plan.
unsafe fn move_tree(fd: RawFd, target: &std::ffi::CStr) -> libc::c_int {
    // SAFETY: plain syscall on an fd and NUL-terminated strings alive for the call.
    unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        ) as libc::c_int
    }
}

/// Sets IFF_UP on `lo` of the current network namespace.
///
/// # Safety
/// Only in the cloned child (it is async-signal-safe: stack data and syscalls only).
unsafe fn loopback_up() -> Result<(), i32> {
    // SAFETY: ifreq is plain old data, zero-initialised and filled on the stack; the
    // ioctls read and write only that struct.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(errno());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if r >= 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        let e = errno();
        libc::close(fd);
        if r < 0 {
            Err(e)
        } else {
            Ok(())
        }
    }
}

/// Opens a pseudo-terminal in the container's devpts, makes it the child's stdio
/// and controlling terminal, and sends the master over `console`.
///
/// # Safety
/// Only in the cloned child (async-signal-safe: stack data and syscalls only).
unsafe fn terminal(plan: &Plan, console: RawFd) -> Result<(), i32> {
    // SAFETY: plain syscalls on fds this child owns and on stack structs.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(errno());
        }
        let mut unlock: libc::c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &mut unlock) < 0 {
            return Err(errno());
        }
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            return Err(errno());
        }
        if let Some((rows, cols)) = plan.winsize {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            if libc::ioctl(slave, libc::TIOCSWINSZ, &ws) < 0 {
                return Err(errno());
            }
        }
        // /dev/console is the container's terminal, as runc has it.
        if plan.bind_console {
            bind_console(slave)?;
        }
        send_fd(console, master)?;
        libc::close(master);
        for target in 0..3 {
            if libc::dup2(slave, target) < 0 {
                return Err(errno());
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            return Err(errno());
        }
        Ok(())
    }
}

/// Binds the terminal `slave` over /dev/console, by descriptors only: the file
/// is created without following a symlink, and the pts node is cloned from the
/// open slave, so that no path can be swapped in between (the CVE-2025-52565
/// class).
///
/// # Safety
/// Only in the cloned child, inside the container's root; async-signal-safe.
unsafe fn bind_console(slave: RawFd) -> Result<(), i32> {
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: plain syscalls on descriptors this child owns and on static
    // NUL-terminated strings.
    unsafe {
        let target = libc::open(
            c"/dev/console".as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        );
        if target < 0 {
            return Err(errno());
        }
        let tree = libc::syscall(
            libc::SYS_open_tree,
            slave,
            c"".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint,
        ) as RawFd;
        if tree < 0 {
            let e = errno();
            libc::close(target);
            return Err(e);
        }
        let r = libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        );
        let e = errno();
        libc::close(tree);
        libc::close(target);
        if r < 0 {
            return Err(e);
        }
        Ok(())
    }
}

/// Room for one fd in a control message, aligned as cmsghdr needs.
#[repr(C)]
pub(super) union CmsgBuf {
    align: libc::cmsghdr,
    bytes: [u8; 64],
}

/// Sends one fd with SCM_RIGHTS. Async-signal-safe.
///
/// # Safety
/// `sock` must be a connected unix socket and `fd` an open descriptor.
pub(super) unsafe fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), i32> {
    // SAFETY: the msghdr, iovec and control buffer live on this stack frame for
    // the duration of sendmsg; CMSG_* compute offsets inside that buffer, which is
    // large enough for one int (CMSG_SPACE(4) <= 64).
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut buf: CmsgBuf = std::mem::zeroed();
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut buf as *mut CmsgBuf).cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(errno());
        }
        Ok(())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) version 3: `mask` as permitted and effective, nothing inheritable.
///
/// # Safety
/// Plain syscall on stack data; async-signal-safe.
unsafe fn capset(mask: u64) -> libc::c_int {
    const VERSION_3: u32 = 0x2008_0522;
    let header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let lo = mask as u32;
    let hi = (mask >> 32) as u32;
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    // SAFETY: header and data are valid repr(C) structs laid out as the kernel's
    // __user_cap_header_struct and two __user_cap_data_struct (version 3).
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int }
}
