//! Every `unsafe` block of berth. Each one says which invariant makes it sound.
//!
//! The child side of [`spawn`] runs between clone and exec in a copy of a
//! single-threaded shim: it only issues syscalls on data prepared beforehand in the
//! [`Plan`] and on the stack. It never allocates, logs or takes a lock.

mod bpf;
mod child;
mod userns;

pub use bpf::{attach_device_program, device_programs, load_device_program};
pub use userns::with_fs_ids;
use userns::{
    kill_and_reap, mapping_userns, pid_of, prepare, restore_namespaces, set_rlimits, write_maps,
    Helper3,
};

use child::{child_main, ChildFds, CmsgBuf};

use crate::plan::{step, Op, Plan, MAX_TREES};
use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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

/// A helper program the shim started ([`spawn_helper`]): its pid, the write end
/// of its stdin and the read end of its stdout.
#[derive(Debug)]
pub struct Helper {
    pub pid: i32,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
}

/// Starts `argv[0]` (an absolute path) with `argv`, an empty environment, stdin and
/// stdout on new pipes, stderr inherited, and the descriptors of `keep` open at
/// their own numbers (every other descriptor of the shim is close-on-exec). A small
/// posix_spawn rather than std's process machinery, which would make every shim's
/// binary larger (see docs/BENCHMARKS.md). Reap it with [`wait_helper`].
pub fn spawn_helper(argv: &[std::ffi::CString], keep: &[BorrowedFd<'_>]) -> io::Result<Helper> {
    if argv.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no program"));
    }
    let (in_r, in_w) = pipe_cloexec()?;
    let (out_r, out_w) = pipe_cloexec()?;
    for fd in keep {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
    }
    let mut ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    ptrs.push(std::ptr::null_mut());
    let envp: [*mut libc::c_char; 1] = [std::ptr::null_mut()];
    let mut pid: libc::pid_t = 0;
    // SAFETY: `actions` is initialised by posix_spawn_file_actions_init before any
    // other use and destroyed once, after posix_spawn; the dup2 actions name pipe
    // ends that stay open until after the call; `ptrs` and `envp` are
    // NULL-terminated arrays of pointers into `argv`'s CStrings (alive for the whole
    // call; posix_spawn does not write through them despite the `*mut` type), and
    // `pid` outlives the call.
    let rc = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut rc = libc::posix_spawn_file_actions_init(&mut actions);
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_adddup2(&mut actions, in_r.as_raw_fd(), 0);
        }
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_adddup2(&mut actions, out_w.as_raw_fd(), 1);
        }
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                ptrs[0],
                &actions,
                std::ptr::null(),
                ptrs.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        rc
    };
    for fd in keep {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(Helper {
        pid,
        stdin: in_w,
        stdout: out_r,
    })
}

/// Waits for a helper of [`spawn_helper`] to end.
pub fn wait_helper(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    }
}

/// clone(2) as fork, creating the namespaces of `flags`: the child (0 returned)
/// gets a private copy of the address space; the parent gets its pid.
///
/// # Safety
/// The calling process must be single-threaded (the shim is), and the child must
/// only make syscalls on what it already holds until it execs or _exits.
unsafe fn fork_with(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: without CLONE_VM and with a NULL stack, clone behaves like fork; the
    // caller upholds the rest.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as libc::pid_t)
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
    // A user namespace's child gets its trees from us, opened as the host's root.
    let mut prepared: Vec<OwnedFd> = Vec::new();
    let mut trees = [-1 as RawFd; MAX_TREES];
    if let Some(u) = &plan.userns {
        let mapping = mapping_userns(u)?;
        for p in &plan.prepare {
            let what = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.describe()));
            if let Some(fd) = prepare(p, u, mapping.as_fd()).map_err(what)? {
                trees[p.slot()] = fd.as_raw_fd();
                prepared.push(fd);
            }
        }
    }
    if let Some(userns) = plan.join_userns {
        // Another container's user namespace: a helper enters it (and the
        // namespaces of `parent_ns` first) and clones the child there.
        let r = spawn_child(plan, stdio, cgroup, trees, Some(userns));
        drop(prepared);
        let spawned = r?;
        if let Err(e) = set_rlimits(spawned.pid, plan) {
            kill_and_reap(spawned.pid);
            return Err(e);
        }
        return Ok(spawned);
    }
    // Namespaces the child must be created in before its user namespace: entered
    // by this (single-threaded) process around clone, then left.
    let mut restore = Vec::new();
    for (fd, nstype) in &plan.parent_ns {
        let name = match *nstype {
            libc::CLONE_NEWNET => "net",
            libc::CLONE_NEWIPC => "ipc",
            _ => {
                return Err(io::Error::other(
                    "only net and ipc are entered around clone",
                ))
            }
        };
        let own = rustix::fs::open(
            format!("/proc/thread-self/ns/{name}"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        // SAFETY: `fd` is a namespace descriptor the caller holds open for the
        // plan's lifetime; setns only changes this thread's namespace.
        if unsafe { libc::setns(*fd, *nstype) } < 0 {
            let e = io::Error::last_os_error();
            restore_namespaces(&restore);
            return Err(e);
        }
        restore.push((own, *nstype));
    }
    let mut r = Ok(());
    if plan.parent_ns.iter().any(|(_, t)| *t == libc::CLONE_NEWNET) {
        for (path, value) in &plan.parent_sysctls {
            r = std::fs::write(path.to_str().unwrap_or_default(), value.as_bytes()).map_err(|e| {
                io::Error::new(e.kind(), format!("writing {}: {e}", path.to_string_lossy()))
            });
            if r.is_err() {
                break;
            }
        }
    }
    let r = r.and_then(|()| spawn_child(plan, stdio, cgroup, trees, None));
    restore_namespaces(&restore);
    drop(prepared);
    let spawned = r?;
    if let Some(u) = &plan.userns {
        let maps = write_maps(spawned.pid, u).and_then(|()| set_rlimits(spawned.pid, plan));
        if let Err(e) = maps {
            kill_and_reap(spawned.pid);
            return Err(e);
        }
    } else if plan.rlimits_by_parent {
        if let Err(e) = set_rlimits(spawned.pid, plan) {
            kill_and_reap(spawned.pid);
            return Err(e);
        }
    }
    Ok(spawned)
}

/// Clones the child for [`spawn`] (which has prepared `trees` for it).
fn spawn_child(
    plan: &Plan,
    stdio: [RawFd; 3],
    cgroup: Option<BorrowedFd<'_>>,
    trees: [RawFd; MAX_TREES],
    through: Option<RawFd>,
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

    if let Some(userns) = through {
        let helper = Helper3 {
            plan,
            argv: &argv,
            envp: &envp,
            fds: ChildFds {
                sync: sync_r.as_raw_fd(),
                report: report_w.as_raw_fd(),
                stdio,
                console: console_child.as_ref().map_or(-1, |c| c.as_raw_fd()),
                trees,
            },
            cgroup: cgroup.map(|c| c.as_raw_fd()),
            userns,
        };
        let pidfd = helper.run()?;
        drop(sync_r);
        drop(report_w);
        drop(console_child);
        let pid = pid_of(&pidfd)?;
        return Ok(Spawned {
            pid,
            pidfd: Some(pidfd),
            in_cgroup: cgroup.is_some(),
            sync: sync_w,
            report: report_r,
            console: console_parent,
        });
    }
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
        // SAFETY: this process is single-threaded; every pointer prepared above
        // stays valid in the child's copy, which runs child_main below.
        pid = unsafe { fork_with(plan.clone_flags)? } as libc::c_long;
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
                ChildFds {
                    sync: sync_r.as_raw_fd(),
                    report: report_w.as_raw_fd(),
                    stdio,
                    console: console_child.as_ref().map_or(-1, |c| c.as_raw_fd()),
                    trees,
                },
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

/// Makes `cmd`'s child enter new user, mount and network namespaces between
/// fork and exec, write its pid (4 bytes, native order) on `ready`, then wait
/// for one byte on `go`: the parent writes the new user namespace's ID maps
/// meanwhile (as only it can, with newuidmap), so that the program starts as
/// the namespace's root: a rootless berthd's child. (`Command::spawn` returns
/// only once the child has exec'd: the parent must do the mapping from
/// another thread.)
pub fn unshare_before_exec(cmd: &mut std::process::Command, ready: OwnedFd, go: OwnedFd) {
    use std::os::unix::process::CommandExt;
    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET;
    // SAFETY: the closure runs in the forked (single-threaded) child before exec
    // and calls only unshare, getpid, write and read, which are
    // async-signal-safe; `ready` and `go` are owned by the closure and open.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) < 0 {
                return Err(io::Error::last_os_error());
            }
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(ready.as_raw_fd(), pid.as_ptr().cast(), pid.len()) != pid.len() as isize
            {
                return Err(io::Error::last_os_error());
            }
            let mut b = [0u8; 1];
            loop {
                let n = libc::read(go.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                if n == 1 {
                    return Ok(());
                }
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the parent gave up before mapping the user namespace",
                    ));
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
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
