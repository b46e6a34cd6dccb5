//! Every `unsafe` block of berth. Each one says which invariant makes it sound.
//!
//! The child side of [`spawn`] runs between clone and exec in a copy of a
//! single-threaded shim: it only issues syscalls on data prepared beforehand in the
//! [`Plan`] and on the stack. It never allocates, logs or takes a lock.

use crate::plan::{step, Op, Plan};
use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// A cloned container child, held before exec until [`Spawned::release`].
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    /// A pidfd for the child, from CLONE_PIDFD (None when the fallback clone was used).
    pub pidfd: Option<OwnedFd>,
    /// Whether the child was created inside the cgroup2 directory given to [`spawn`].
    pub in_cgroup: bool,
    sync: OwnedFd,
    report: OwnedFd,
    console: Option<OwnedFd>,
}

/// The step a child failed at, and the errno it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildFailure {
    pub step: i32,
    pub errno: i32,
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Clones a child into new namespaces per `plan`, created directly inside the
/// cgroup2 directory `cgroup` when given (clone3 CLONE_INTO_CGROUP; falls back to a
/// plain clone on kernels without it). The child joins `plan.cgroup_tasks` itself,
/// then waits until [`Spawned::release`].
///
/// The calling process must be single-threaded (the shim is): the child is a copy of
/// it that runs on until exec.
pub fn spawn(
    plan: &Plan,
    stdio: [RawFd; 3],
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<Spawned> {
    let (sync_r, sync_w) = pipe_cloexec()?;
    let (report_r, report_w) = pipe_cloexec()?;
    // The terminal's master comes back from the child over this pair (SCM_RIGHTS).
    let (console_parent, console_child) = if plan.controlling_tty {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    let mut pidfd: libc::c_int = -1;
    let mut in_cgroup = false;
    let mut pid: libc::c_long = -1;
    if let Some(cg) = cgroup {
        let args = CloneArgs {
            flags: plan.clone_flags as u64 | CLONE_PIDFD | CLONE_INTO_CGROUP,
            pidfd: (&mut pidfd as *mut libc::c_int) as u64,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cg.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: clone3 with a zero stack behaves like fork: the child gets a
        // private copy of this single-threaded address space, so every pointer
        // prepared above stays valid in it. `args` is a valid clone_args of the size
        // passed, and `pidfd` outlives the call.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid >= 0 {
            in_cgroup = true;
        } else {
            match io::Error::last_os_error().raw_os_error() {
                // Kernels without clone3 or CLONE_INTO_CGROUP: use clone below.
                Some(libc::ENOSYS) | Some(libc::E2BIG) | Some(libc::EINVAL) => {}
                _ => return Err(io::Error::last_os_error()),
            }
        }
    }
    if pid < 0 {
        // SAFETY: clone without CLONE_VM and with a NULL stack behaves like fork: the
        // child gets a private copy of this (single-threaded) address space, so every
        // pointer prepared above stays valid in it. The flags only create namespaces.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (plan.clone_flags | libc::SIGCHLD) as libc::c_ulong,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_int>(),
                std::ptr::null_mut::<libc::c_int>(),
                0 as libc::c_ulong,
            )
        };
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: we are the freshly cloned child; child_main never returns, only
        // execs or _exits, and touches nothing but the plan and the raw fds given.
        unsafe {
            child_main(
                plan,
                &argv,
                &envp,
                sync_r.as_raw_fd(),
                report_w.as_raw_fd(),
                stdio,
                console_child.as_ref().map_or(-1, |c| c.as_raw_fd()),
            )
        }
    }
    drop(sync_r);
    drop(report_w);
    drop(console_child);
    let pidfd = (pidfd >= 0).then(|| {
        // SAFETY: the kernel just created this descriptor for us (CLONE_PIDFD) and
        // nothing else holds it.
        unsafe { OwnedFd::from_raw_fd(pidfd) }
    });
    Ok(Spawned {
        pid: pid as i32,
        pidfd,
        in_cgroup,
        sync: sync_w,
        report: report_r,
        console: console_parent,
    })
}

impl Spawned {
    /// Lets the child go on, then waits until it has exec'd (Ok, with the terminal's
    /// master when the plan asked for one) or failed (the step and errno it reported).
    pub fn release(self) -> io::Result<Result<Option<OwnedFd>, ChildFailure>> {
        rustix::io::write(&self.sync, &[1]).map_err(io::Error::from)?;
        drop(self.sync);
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < buf.len() {
            match rustix::io::read(&self.report, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if got == 0 {
            return match &self.console {
                Some(c) => recv_fd(c).map(|fd| Ok(Some(fd))),
                None => Ok(Ok(None)),
            };
        }
        let step = i32::from_ne_bytes(buf[..4].try_into().expect("4 bytes"));
        let errno = i32::from_ne_bytes(buf[4..].try_into().expect("4 bytes"));
        Ok(Err(ChildFailure { step, errno }))
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

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

/// The container child: wait for release, set up, exec.
///
/// # Safety
/// Must only run in the child of [`spawn`], with `argv`/`envp` NULL-terminated
/// arrays of pointers into `plan`.
unsafe fn child_main(
    plan: &Plan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    sync: RawFd,
    report: RawFd,
    stdio: [RawFd; 3],
    console: RawFd,
) -> ! {
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
        if let Err(e) = close_all_but(&mut keep[..n]) {
            fail(report, step::CLOSE_FDS, e);
        }

        libc::umask(0);
        let mut trees = [-1 as RawFd; crate::plan::MAX_TREES];
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
        for (resource, soft, hard) in &plan.rlimits {
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
/// namespaces to enter).
const MAX_KEPT_FDS: usize = 16;

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
            } => {
                let rec = if *recursive {
                    libc::AT_RECURSIVE as libc::c_uint
                } else {
                    0
                };
                let fd = libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    source.as_ptr(),
                    OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | rec,
                ) as RawFd;
                if fd < 0 {
                    return Err(errno());
                }
                trees[*slot] = fd;
                Ok(())
            }
            Op::MoveMount { slot, target } => ok(libc::syscall(
                libc::SYS_move_mount,
                trees[*slot],
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            ) as libc::c_int),
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

/// Room for one fd in a control message, aligned as cmsghdr needs.
#[repr(C)]
union CmsgBuf {
    align: libc::cmsghdr,
    bytes: [u8; 64],
}

/// Sends one fd with SCM_RIGHTS. Async-signal-safe.
///
/// # Safety
/// `sock` must be a connected unix socket and `fd` an open descriptor.
unsafe fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), i32> {
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

/// Receives one fd sent with [`send_fd`].
fn recv_fd(sock: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: as in send_fd, every pointer refers to this stack frame; the kernel
    // writes at most msg_controllen bytes of control data into `buf`.
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
        msg.msg_controllen = std::mem::size_of::<CmsgBuf>();
        if libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no terminal was passed by the container",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        // SAFETY: SCM_RIGHTS just installed this descriptor in our table; we are
        // its only owner.
        Ok(OwnedFd::from_raw_fd(fd))
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

static TAKEN: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

/// Takes ownership of a file descriptor this process inherited at exec (socket
/// activation's `LISTEN_FDS`, or the listener berthd hands the shim as fd 3), and
/// marks it close-on-exec. Fails if `fd` is not open or was taken already.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let set = taken.get_or_insert_with(HashSet::new);
    if fd < 3 || set.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file descriptor {fd} is not an inherited descriptor that is still free"),
        ));
    }
    // SAFETY: F_GETFD only queries the descriptor table.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    set.insert(fd);
    // SAFETY: the fd is open (checked above), was inherited across exec, and this
    // process hands each such fd out only once (the TAKEN set), so nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// Marks every descriptor from `lowest` up close-on-exec, so that nothing this
/// process inherited (from a shell, a supervisor) can reach a program it starts.
/// Descriptors it hands on on purpose are put in place after fork ([`pass_fds`]).
pub fn cloexec_from(lowest: RawFd) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing: it only sets a
    // flag on descriptors of this process, which no owner relies on being clear
    // (owners that pass one on set it up in the child).
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            lowest as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Before 5.11: one at a time.
    for e in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = e?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd < lowest {
            continue;
        }
        // SAFETY: as above; a descriptor closed meanwhile (the read_dir's own)
        // makes fcntl fail with EBADF, which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// How many descriptors [`pass_fds`] hands over at most.
pub const MAX_PASSED_FDS: usize = 64;

/// Runs `f` on a new thread inside a new, empty network namespace, and returns a
/// descriptor of that namespace (which keeps it alive) with `f`'s result. Sockets `f`
/// creates belong to the new namespace: that is how berthd configures it.
pub fn in_new_netns<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<(OwnedFd, T)> {
    std::thread::spawn(move || {
        // SAFETY: only CLONE_NEWNET is unshared, on this thread alone, which exits
        // when `f` returns. No file descriptor table or filesystem state is
        // unshared, so no other thread can observe a descriptor it does not share.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
        let ns = std::fs::File::open("/proc/thread-self/ns/net")?;
        Ok((OwnedFd::from(ns), f()?))
    })
    .join()
    .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

/// Arranges for each `(fd, target)` to be the child's descriptor `target`, like
/// [`pass_fd`] for several at once: sources are first moved above every target so
/// that one `dup2` never closes another's source.
pub fn pass_fds(cmd: &mut std::process::Command, fds: Vec<(OwnedFd, RawFd)>) {
    use std::os::unix::process::CommandExt;
    assert!(fds.len() <= MAX_PASSED_FDS, "too many descriptors to pass");
    let floor = fds.iter().map(|(_, t)| *t).max().unwrap_or(0) + 1;
    // SAFETY: the closure runs in the forked child before exec and calls only fcntl
    // and dup2, which are async-signal-safe; the fds are owned by the closure and open.
    unsafe {
        cmd.pre_exec(move || {
            // No allocation between fork and exec: a fixed array.
            let mut moved = [(-1, -1); MAX_PASSED_FDS];
            for (slot, (fd, target)) in moved.iter_mut().zip(&fds) {
                let high = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor);
                if high < 0 {
                    return Err(io::Error::last_os_error());
                }
                *slot = (high, *target);
            }
            for &(high, target) in moved.iter().take(fds.len()) {
                if libc::dup2(high, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Arranges for `fd` to be the child's descriptor `target` (and only there: it stays
/// close-on-exec in this process, so concurrent spawns do not inherit it).
pub fn pass_fd(cmd: &mut std::process::Command, fd: OwnedFd, target: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls only dup2 and
    // fcntl, which are async-signal-safe; `fd` is owned by the closure and open.
    unsafe {
        cmd.pre_exec(move || {
            let src = fd.as_raw_fd();
            if src == target {
                let flags = libc::fcntl(src, libc::F_GETFD);
                if flags < 0 || libc::fcntl(src, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(src, target) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// strerror-style text for an errno, for error messages.
pub fn errno_text(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a static, NUL-terminated string; we copy
    // it out at once.
    let s = unsafe { CStr::from_ptr(libc::strerror(errno)) };
    s.to_string_lossy().into_owned()
}

/// A minimal init for `docker run --init` (what tini does for Docker): runs `argv`
/// as its child, forwards every signal it receives to it, reaps every orphan of the
/// container, and exits as the child did. Never returns.
pub fn init(argv: &[std::ffi::CString]) -> ! {
    // SAFETY: sigset_t is plain data, initialised by sigfillset before use; the
    // calls only change this single-threaded process's signal mask.
    let all = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: fork in this single-threaded process; the child only resets its mask
    // and execs (async-signal-safe), with arguments prepared above.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: see above; on failure the child exits at once.
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::execvp(ptrs[0], ptrs.as_ptr());
            let code = if errno() == libc::ENOENT { 127 } else { 126 };
            libc::_exit(code);
        }
    }
    if child < 0 {
        std::process::exit(126);
    }
    loop {
        // SAFETY: siginfo_t is plain data the kernel fills; `all` is a valid set.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&all, &mut info)
        };
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out-pointer on the stack.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                std::process::exit(code);
            }
        }
    }
}
