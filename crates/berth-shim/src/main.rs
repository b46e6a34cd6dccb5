//! berth-shim: the parent of one container. It creates the container from the spec
//! berthd wrote, holds its stdio, writes Docker's json-file log, streams output to
//! attached clients, records the exit status, and cleans up the cgroup. It does not
//! depend on berthd staying alive.
//!
//! Usage: `berth-shim <spec.json>` with the listening socket as fd 3 (see
//! `berth_runtime::shimproto`). Single-threaded by design: the container is cloned
//! from this process.

mod input;
mod log;
mod sidecar_pipe;

use berth_runtime::cgroups::{Cgroup, Hierarchy};
use berth_runtime::plan::{step, HostFacts, Plan};
use berth_runtime::shimproto::{
    frame_header, ExitRecord, InputParser, Started, HELD_FDS_START, IPCNS_FD, LISTENER_FD,
    NETNS_FD, PIDNS_FD, STREAM_STDERR, STREAM_STDOUT, USERNS_FD, WANT_CONTROL, WANT_MONITOR,
    WANT_STDERR, WANT_STDIN, WANT_STDOUT,
};
use berth_runtime::spec::{ExecSpec, NsSource, Spec};
use berth_runtime::{sys, timefmt};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

struct Client {
    sock: UnixStream,
    want: Option<u8>,
    input: InputParser,
}

impl Client {
    fn sends_input(&self) -> bool {
        self.want
            .is_some_and(|w| w & (WANT_STDIN | WANT_CONTROL) != 0)
    }
}

struct Shim {
    listener: UnixListener,
    socket_path: Option<PathBuf>,
    clients: Vec<Client>,
    started_line: Vec<u8>,
}

impl Shim {
    /// Accepts every connection waiting in the backlog. berthd writes a client's
    /// first byte right after connecting, so it is read here at once (bounded by a
    /// short timeout; a client that has not sent it yet is served by the poll loop).
    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, _)) => {
                    let mut b = [0u8; 1];
                    let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(100)));
                    let want = match sock.read(&mut b) {
                        Ok(1) => Some(b[0]),
                        Ok(_) => continue,
                        Err(_) => None,
                    };
                    let _ = sock.set_read_timeout(None);
                    let mut c = Client {
                        sock,
                        want,
                        input: InputParser::default(),
                    };
                    if want.is_some_and(|w| w & WANT_MONITOR != 0)
                        && !self.started_line.is_empty()
                        && c.sock.write_all(&self.started_line).is_err()
                    {
                        continue;
                    }
                    self.clients.push(c);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Reads what a client sent: its first byte says what it wants; after it, a
    /// stdin or control client sends input frames. False when the client is gone.
    fn service_client(&mut self, i: usize, stdin: &mut input::Stdin) -> bool {
        let mut buf = [0u8; 64 * 1024];
        let c = &mut self.clients[i];
        let n = match c.sock.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        if c.want.is_none() {
            c.want = Some(data[0]);
            data = &data[1..];
            if c.want.is_some_and(|w| w & WANT_MONITOR != 0)
                && !self.started_line.is_empty()
                && c.sock.write_all(&self.started_line).is_err()
            {
                return false;
            }
        }
        if !c.sends_input() || data.is_empty() {
            return true;
        }
        let may_write = c.want.is_some_and(|w| w & WANT_STDIN != 0);
        match c.input.push(data) {
            Some(frames) => {
                for (kind, payload) in frames {
                    stdin.apply(kind, &payload, may_write);
                }
                true
            }
            None => false,
        }
    }

    /// Sends output to the clients that want its stream: framed as Docker's
    /// multiplexed stream, or `raw` for a terminal (one stream, as Docker sends it).
    fn broadcast(&mut self, stream: u8, data: &[u8], raw: bool) {
        let want = if stream == STREAM_STDOUT {
            WANT_STDOUT
        } else {
            WANT_STDERR
        };
        let header = frame_header(stream, data.len());
        self.clients.retain_mut(|c| match c.want {
            Some(w) if w & want != 0 && w & WANT_MONITOR == 0 => {
                (raw || c.sock.write_all(&header).is_ok()) && c.sock.write_all(data).is_ok()
            }
            _ => true,
        });
    }

    fn announce_start(&mut self, started: &Started) {
        let mut line = serde_json::to_vec(started).expect("Started serialises");
        line.push(b'\n');
        self.started_line = line;
        let line = self.started_line.clone();
        self.clients.retain_mut(|c| match c.want {
            Some(w) if w & WANT_MONITOR != 0 => c.sock.write_all(&line).is_ok(),
            _ => true,
        });
    }

    fn finish(mut self, record: &ExitRecord) {
        let mut line = serde_json::to_vec(record).expect("ExitRecord serialises");
        line.push(b'\n');
        for c in &mut self.clients {
            if c.want.is_some_and(|w| w & WANT_MONITOR != 0) {
                let _ = c.sock.write_all(&line);
            }
        }
        self.clients.clear();
        if let Some(p) = &self.socket_path {
            let _ = fs::remove_file(p);
        }
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// Docker's wording for a start failure, and the exit code it records for it.
fn start_error(plan: &Plan, step_index: i32, errno: i32) -> (String, i32) {
    let arg0 = plan
        .argv
        .first()
        .map(|a| a.to_string_lossy())
        .unwrap_or_default();
    if step_index == step::EXEC {
        return match errno {
            libc::ENOENT if !arg0.contains('/') => (
                format!("exec: \"{arg0}\": executable file not found in $PATH"),
                127,
            ),
            libc::ENOENT => (format!("exec: \"{arg0}\": no such file or directory"), 127),
            libc::EACCES => (format!("exec: \"{arg0}\": permission denied"), 126),
            e => (format!("exec: \"{arg0}\": {}", sys::errno_text(e)), 126),
        };
    }
    let msg = format!(
        "error during container init: {}: {}",
        plan.describe_step(step_index),
        sys::errno_text(errno).to_lowercase()
    );
    let code = if errno == libc::EACCES { 126 } else { 128 };
    (msg, code)
}

/// The container's stdio: a pseudo-terminal, or pipes (and /dev/null or a held
/// pipe for stdin).
struct ContainerIo {
    /// What the child gets as fds 0, 1, 2; closed here once it is cloned.
    child: Vec<OwnedFd>,
    /// Output ends the shim reads, with their stream id.
    outputs: Vec<(u8, OwnedFd)>,
    /// Where the container's stdin is written: the pipe of an open stdin (`-i`),
    /// or the terminal's master.
    stdin: Option<OwnedFd>,
    terminal: bool,
}

impl ContainerIo {
    fn new(p: &berth_runtime::spec::Process) -> std::io::Result<ContainerIo> {
        let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
        if p.terminal {
            // The child allocates the terminal in its own devpts and hands the master
            // back (see `attach_terminal`); until then it has /dev/null.
            let null = || fs::File::open("/dev/null").map(OwnedFd::from);
            return Ok(ContainerIo {
                child: vec![null()?, null()?, null()?],
                outputs: vec![],
                stdin: None,
                terminal: true,
            });
        }
        let (stdin, writer) = if p.open_stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (fs::File::open("/dev/null")?.into(), None)
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        Ok(ContainerIo {
            child: vec![stdin, out_w, err_w],
            outputs: vec![(STREAM_STDOUT, out_r), (STREAM_STDERR, err_r)],
            stdin: writer,
            terminal: false,
        })
    }

    fn child_fds(&self) -> [std::os::fd::RawFd; 3] {
        use std::os::fd::AsRawFd;
        [
            self.child[0].as_raw_fd(),
            self.child[1].as_raw_fd(),
            self.child[2].as_raw_fd(),
        ]
    }

    /// Takes the terminal's master from the child: the output to read, and the
    /// input kept open.
    fn attach_terminal(&mut self, master: OwnedFd) -> std::io::Result<()> {
        self.outputs.push((STREAM_STDOUT, master.try_clone()?));
        self.stdin = Some(master);
        Ok(())
    }

    /// Drops the child's ends once it has its own copies.
    fn parent_side(mut self) -> ContainerIo {
        self.child.clear();
        self
    }
}

struct Running {
    pid: i32,
    pidfd: OwnedFd,
    io: ContainerIo,
    cgroup: Cgroup,
}

/// An error with its sources, joined with ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What a shim runs: a container, or a process joining one (`docker exec`).
enum Job {
    Container(Box<Spec>),
    Exec(Box<ExecSpec>),
}

impl Job {
    fn process(&self) -> &berth_runtime::spec::Process {
        match self {
            Job::Container(s) => &s.process,
            Job::Exec(x) => &x.process,
        }
    }

    /// The container's spec; an exec has no log of its own (Docker's rule).
    fn container(&self) -> Option<&Spec> {
        match self {
            Job::Container(s) => Some(s),
            Job::Exec(_) => None,
        }
    }

    fn exit_path(&self) -> &Path {
        match self {
            Job::Container(s) => &s.exit_path,
            Job::Exec(x) => &x.exit_path,
        }
    }
}

/// Opens the namespaces of a running container's init for an exec, and moves this
/// shim into its PID namespace (which applies to the children it clones next).
fn enter_container(pid: i32) -> std::io::Result<Vec<(OwnedFd, libc::c_int)>> {
    let open = |name: &str| {
        rustix::fs::open(
            format!("/proc/{pid}/ns/{name}"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
    };
    let pidns = open("pid")?;
    rustix::thread::move_into_link_name_space(
        pidns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::ProcessID),
    )?;
    let mut out = Vec::new();
    for (name, t) in [
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("mnt", libc::CLONE_NEWNS),
    ] {
        out.push((open(name)?, t));
    }
    // A container with a user namespace of its own (`--userns-remap`): joined
    // first, and only when it is not ours (setns refuses one's own).
    let user = open("user")?;
    let own = rustix::fs::stat("/proc/self/ns/user")?;
    let theirs = rustix::fs::fstat(&user)?;
    if (own.st_dev, own.st_ino) != (theirs.st_dev, theirs.st_ino) {
        out.push((user, libc::CLONE_NEWUSER));
    }
    Ok(out)
}

fn start(job: &Job) -> Result<Running, (String, i32)> {
    let internal = |what: &str, e: &dyn std::error::Error| (format!("{what}: {}", chain(e)), 128);
    let mounts =
        fs::read_to_string("/proc/self/mounts").map_err(|e| internal("reading mounts", &e))?;
    // A container without a cgroup path has no cgroup (a rootless berthd
    // without delegation).
    let cgroup = match job {
        Job::Container(spec) => &spec.cgroup,
        Job::Exec(x) => &x.cgroup,
    };
    let hierarchy = if cgroup.path.is_empty() {
        Hierarchy::none()
    } else {
        let h = Hierarchy::detect(Path::new("/sys/fs/cgroup"), &mounts)
            .map_err(|e| internal("detecting cgroups", &e))?;
        // A rootless berthd's delegated subtree: cgroup2 alone.
        if cgroup.delegated {
            h.unified_only()
        } else {
            h
        }
    };
    let delegated = cgroup.delegated;
    let cap_last_cap = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let cap_permitted = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    let host = HostFacts {
        cap_last_cap,
        cap_permitted,
        cgroup2: hierarchy.mode == berth_runtime::cgroups::Mode::V2,
        device_cgroup: hierarchy.has_device_cgroup() && !delegated,
        in_userns: berth_runtime::in_user_namespace(),
    };
    // Held open until the child has entered them.
    let mut _namespaces = Vec::new();
    let (mut plan, cgroup) = match job {
        Job::Container(spec) => {
            let mut plan =
                Plan::build(spec, host).map_err(|e| internal("preparing the container", &e))?;
            if spec.network == berth_runtime::spec::NetworkMode::Join {
                let ns = sys::take_inherited_fd(NETNS_FD)
                    .map_err(|e| internal("taking the network namespace", &e))?;
                plan.join_netns(std::os::fd::AsRawFd::as_raw_fd(&ns));
                _namespaces.push((ns, libc::CLONE_NEWNET));
            }
            if spec.namespaces.ipc == NsSource::Join {
                let ns = sys::take_inherited_fd(IPCNS_FD)
                    .map_err(|e| internal("taking the IPC namespace", &e))?;
                plan.join_ipcns(std::os::fd::AsRawFd::as_raw_fd(&ns));
                _namespaces.push((ns, libc::CLONE_NEWIPC));
            }
            if spec.namespaces.user_join {
                let ns = sys::take_inherited_fd(USERNS_FD)
                    .map_err(|e| internal("taking the user namespace", &e))?;
                plan.join_userns = Some(std::os::fd::AsRawFd::as_raw_fd(&ns));
                _namespaces.push((ns, libc::CLONE_NEWUSER));
            }
            if spec.namespaces.pid == NsSource::Join {
                // A PID namespace is entered by the parent: it applies to the
                // children made afterwards, the container's process first.
                let ns = sys::take_inherited_fd(PIDNS_FD)
                    .map_err(|e| internal("taking the PID namespace", &e))?;
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::ProcessID),
                )
                .map_err(|e| internal("entering the PID namespace", &e))?;
            }
            (
                plan,
                hierarchy
                    .create(&spec.cgroup)
                    .map_err(|e| internal("creating the cgroup", &e))?,
            )
        }
        Job::Exec(x) => {
            _namespaces = enter_container(x.container_pid)
                .map_err(|e| internal("entering the container's namespaces", &e))?;
            let raw: Vec<(std::os::fd::RawFd, libc::c_int)> = _namespaces
                .iter()
                .map(|(fd, t)| (std::os::fd::AsRawFd::as_raw_fd(fd), *t))
                .collect();
            (
                Plan::build_exec(&x.process, &raw, host)
                    .map_err(|e| internal("preparing the process", &e))?,
                hierarchy.existing(&x.cgroup),
            )
        }
    };
    let fail = |cgroup: &Cgroup, e: (String, i32)| {
        let _ = cgroup.remove();
        e
    };
    plan.join_cgroup_tasks(&cgroup.v1_task_files())
        .map_err(|e| fail(&cgroup, internal("preparing the container", &e)))?;
    let unified: Option<OwnedFd> = match cgroup.unified_dir() {
        Some(d) => Some(
            rustix::fs::open(
                d,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| fail(&cgroup, internal("opening the cgroup", &e)))?,
        ),
        None => None,
    };
    let io = ContainerIo::new(job.process())
        .map_err(|e| fail(&cgroup, internal("setting up stdio", &e)))?;
    let spawned = sys::spawn(&plan, io.child_fds(), unified.as_ref().map(|f| f.as_fd()))
        .map_err(|e| fail(&cgroup, internal("cloning the container process", &e)))?;
    drop(unified);
    let io = io.parent_side();
    let mut spawned = spawned;
    let pid = spawned.pid;
    let reap = |cgroup: &Cgroup, e: (String, i32)| {
        let _ = rustix::process::kill_process(
            Pid::from_raw(pid).expect("positive pid"),
            rustix::process::Signal::KILL,
        );
        let _ = rustix::process::waitpid(Pid::from_raw(pid), WaitOptions::empty());
        fail(cgroup, e)
    };
    if !spawned.in_cgroup {
        if let Err(e) = cgroup.add_pid_unified(pid) {
            return Err(reap(&cgroup, internal("joining the cgroup", &e)));
        }
    }
    let pidfd = match spawned.pidfd.take() {
        Some(fd) => fd,
        None => rustix::process::pidfd_open(
            Pid::from_raw(pid).expect("positive pid"),
            rustix::process::PidfdFlags::empty(),
        )
        .map_err(|e| reap(&cgroup, internal("pidfd_open", &e)))?,
    };
    match spawned.release() {
        Ok(Ok(master)) => {
            let mut io = io;
            if let Some(m) = master {
                if let Err(e) = io.attach_terminal(m) {
                    return Err(reap(&cgroup, internal("taking the terminal", &e)));
                }
            }
            Ok(Running {
                pid,
                pidfd,
                io,
                cgroup,
            })
        }
        Ok(Err(f)) => Err(reap(&cgroup, start_error(&plan, f.step, f.errno))),
        Err(e) => Err(reap(
            &cgroup,
            internal("waiting for the container to start", &e),
        )),
    }
}

fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    if let Some(code) = status.exit_status() {
        code
    } else if let Some(sig) = status.terminating_signal() {
        128 + sig
    } else {
        255
    }
}

fn run(
    job: &Job,
    spec_path: &Path,
    proxies: Vec<(OwnedFd, berth_runtime::spec::PortProxy)>,
    mut shim: Shim,
) -> ExitCode {
    shim.accept_all();
    // A remote log driver connects before the container runs: a receiver that is
    // not there fails the start, as with Docker.
    let remote = match job.container().and_then(|s| {
        let r = s.log_remote.as_ref()?;
        Some(match &s.sidecar {
            Some(car) => sidecar_pipe::start_log(car, spec_path, r.non_blocking, r.max_buffer),
            None => Err(std::io::Error::other("no berth-sidecar given")),
        })
    }) {
        None => None,
        Some(Ok(pipe)) => Some(pipe),
        Some(Err(e)) => {
            let error = format!("failed to initialize logging driver: {e}");
            shim.announce_start(&Started {
                pid: None,
                error: Some(error),
                exit_code: Some(128),
            });
            shim.finish(&ExitRecord {
                exit_code: 128,
                finished_at: timefmt::rfc3339_nano(SystemTime::now()),
                oom_killed: false,
            });
            return ExitCode::SUCCESS;
        }
    };
    let mut running = match start(job) {
        Ok(r) => r,
        Err((error, code)) => {
            shim.announce_start(&Started {
                pid: None,
                error: Some(error),
                exit_code: Some(code),
            });
            shim.finish(&ExitRecord {
                exit_code: code,
                finished_at: timefmt::rfc3339_nano(SystemTime::now()),
                oom_killed: false,
            });
            return ExitCode::SUCCESS;
        }
    };
    shim.announce_start(&Started {
        pid: Some(running.pid),
        error: None,
        exit_code: None,
    });
    let mut logger = job.container().and_then(|s| {
        (s.log_path.is_some() || remote.is_some()).then(|| {
            log::JsonFileLog::open(s.log_path.as_deref(), s.log_rotate, s.log_compress, remote)
        })
    });
    let proxy_car = match (
        proxies.is_empty(),
        job.container().and_then(|s| s.sidecar.as_ref()),
    ) {
        (true, _) => None,
        (false, Some(car)) => match sidecar_pipe::start_proxies(car, &proxies) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("berth-shim: starting the port proxies: {e}");
                None
            }
        },
        (false, None) => {
            eprintln!("berth-shim: no berth-sidecar given for the port proxies");
            None
        }
    };
    drop(proxies);

    let raw = running.io.terminal;
    let mut stdin = input::Stdin::new(running.io.stdin.take(), raw);
    let mut streams: Vec<Option<(u8, &OwnedFd)>> = running
        .io
        .outputs
        .iter()
        .map(|(s, fd)| Some((*s, fd)))
        .collect();
    let nstreams = streams.len();
    let mut status = None;
    let mut buf = vec![0u8; 64 * 1024];
    while status.is_none() || streams.iter().any(Option::is_some) {
        let mut fds = Vec::with_capacity(3 + nstreams + shim.clients.len());
        fds.push(PollFd::new(&shim.listener, PollFlags::IN));
        let want_exit = status.is_none();
        fds.push(PollFd::new(
            &running.pidfd,
            if want_exit {
                PollFlags::IN
            } else {
                PollFlags::empty()
            },
        ));
        for s in &streams {
            match s {
                Some((_, fd)) => fds.push(PollFd::new(*fd, PollFlags::IN)),
                None => fds.push(PollFd::new(&running.pidfd, PollFlags::empty())),
            }
        }
        match stdin.fd().filter(|_| stdin.wants_to_write()) {
            Some(fd) => fds.push(PollFd::new(fd, PollFlags::OUT)),
            None => fds.push(PollFd::new(&running.pidfd, PollFlags::empty())),
        }
        // Input waits in the pipe while the container is behind (backpressure).
        let input_full = stdin.full();
        for c in &shim.clients {
            let flags = if input_full && c.sends_input() {
                PollFlags::empty()
            } else {
                PollFlags::IN
            };
            fds.push(PollFd::new(&c.sock, flags));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                eprintln!("berth-shim: poll: {e}");
                break;
            }
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if ready[0] {
            shim.accept_all();
        }
        if want_exit && ready[1] {
            if let Ok(Some((_, st))) =
                rustix::process::waitpid(Pid::from_raw(running.pid), WaitOptions::NOHANG)
            {
                status = Some(exit_code(st));
            }
        }
        for (i, slot) in streams.iter_mut().enumerate() {
            if !ready[2 + i] {
                continue;
            }
            let Some((stream, fd)) = *slot else { continue };
            match rustix::io::read(fd, &mut buf) {
                Ok(0) | Err(_) => {
                    if let Some(l) = logger.as_mut().and_then(|l| l.as_mut().ok()) {
                        l.flush_partial(stream);
                    }
                    *slot = None;
                }
                Ok(n) => {
                    if let Some(l) = logger.as_mut().and_then(|l| l.as_mut().ok()) {
                        l.write(stream, &buf[..n]);
                    }
                    shim.broadcast(stream, &buf[..n], raw);
                }
            }
        }
        if ready[2 + nstreams] {
            stdin.flush();
        }
        // Clients are serviced last and back to front, so indexes stay valid.
        for i in (0..shim.clients.len()).rev() {
            if ready.get(3 + nstreams + i).copied().unwrap_or(false)
                && !shim.service_client(i, &mut stdin)
            {
                shim.clients.remove(i);
            }
        }
    }
    if let Some(Ok(l)) = logger {
        l.finish();
    }
    if let Some(c) = proxy_car {
        c.finish();
    }
    let record = ExitRecord {
        exit_code: status.unwrap_or(255),
        finished_at: timefmt::rfc3339_nano(SystemTime::now()),
        oom_killed: running.cgroup.oom_killed(),
    };
    if let Err(e) = running.cgroup.remove() {
        eprintln!("berth-shim: {e}");
    }
    let data = serde_json::to_vec(&record).expect("ExitRecord serialises");
    if let Err(e) = write_atomic(job.exit_path(), &data) {
        eprintln!("berth-shim: writing {}: {e}", job.exit_path().display());
    }
    shim.finish(&record);
    ExitCode::SUCCESS
}

fn read_json<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, String> {
    fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("reading {path}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Bound into a container as /sbin/docker-init (`--init`): `docker-init -- cmd...`.
    if args.first().map(String::as_str) == Some("--") {
        let argv: Vec<std::ffi::CString> = args[1..]
            .iter()
            .filter_map(|a| std::ffi::CString::new(a.as_str()).ok())
            .collect();
        if argv.is_empty() {
            eprintln!("docker-init: no command given");
            return ExitCode::from(127);
        }
        sys::init(&argv);
    }
    let job = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [path] => read_json(path).map(|s| Job::Container(Box::new(s))),
        ["--exec", path] => read_json(path).map(|x| Job::Exec(Box::new(x))),
        _ => Err(
            "usage: berth-shim [--exec] <spec.json> (with the listening socket as fd 3)"
                .to_string(),
        ),
    };
    let job = match job {
        Ok(j) => j,
        Err(e) => {
            eprintln!("berth-shim: {e}");
            return ExitCode::from(2);
        }
    };
    // Not dumpable, and so neither is the child cloned into a container: while it
    // is still berth's code, a process of the container can neither ptrace it nor
    // open its /proc/<pid>/fd, exe, cwd or root (that needs CAP_SYS_PTRACE in the
    // host's user namespace). The container's program is dumpable again after exec.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("berth-shim: making the shim non-dumpable: {e}");
        return ExitCode::from(2);
    }
    // Whatever berthd's parent left open stays out of every program started here.
    if let Err(e) = sys::cloexec_from(3) {
        eprintln!("berth-shim: marking inherited descriptors close-on-exec: {e}");
        return ExitCode::from(2);
    }
    // Our own session: signals meant for berthd's terminal or process group never
    // reach the shim, so containers outlive it.
    let _ = rustix::process::setsid();
    let listener = match sys::take_inherited_fd(LISTENER_FD) {
        Ok(fd) => UnixListener::from(fd),
        Err(e) => {
            eprintln!("berth-shim: listening socket on fd {LISTENER_FD}: {e}");
            return ExitCode::from(2);
        }
    };
    // Port reservations: held, never read, until the shim exits with the container.
    let held = match &job {
        Job::Container(spec) => spec.held_fds,
        Job::Exec(_) => 0,
    };
    let _held: Vec<OwnedFd> = match (0..held as i32)
        .map(|i| sys::take_inherited_fd(HELD_FDS_START + i))
        .collect::<std::io::Result<_>>()
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("berth-shim: held descriptors: {e}");
            return ExitCode::from(2);
        }
    };
    // The held sockets a sidecar also serves (see sidecar.rs), as copies.
    let mut proxies = Vec::new();
    for p in job
        .container()
        .map(|s| s.proxies.as_slice())
        .unwrap_or_default()
    {
        match _held.get(p.held as usize).map(OwnedFd::try_clone) {
            Some(Ok(fd)) => proxies.push((fd, p.clone())),
            _ => {
                eprintln!("berth-shim: no held socket {} to proxy", p.held);
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("berth-shim: {e}");
        return ExitCode::from(2);
    }
    let socket_path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    let _ = listener.as_fd();
    run(
        &job,
        Path::new(&args[args.len() - 1]),
        proxies,
        Shim {
            listener,
            socket_path,
            clients: Vec::new(),
            started_line: Vec::new(),
        },
    )
}
