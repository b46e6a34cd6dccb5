//! Rootless berthd, as `dockerd-rootless.sh` with RootlessKit and Podman do it.
//! Started by an unprivileged user, berthd becomes two processes:
//!
//! - the **parent** (this module's [`run_parent`]) stays the user on the host:
//!   it starts the child in new user, mount and network namespaces, maps the
//!   user's ID to root there and the user's subordinate IDs (/etc/subuid,
//!   /etc/subgid) to 1..n with `newuidmap`/`newgidmap` (Debian's `uidmap`),
//!   gives the child's network namespace a way out through `slirp4netns` (its
//!   API socket forwards published ports from the host), passes signals on, and
//!   exits with the child;
//! - the **child** is berthd proper, root in its user namespace and nowhere
//!   else: its files are the user's on the host, its bridges and firewall live
//!   in its own network namespace, its containers' processes are the user's (or
//!   the user's subordinate IDs) on the host. Without a delegated cgroup v2
//!   subtree there are no cgroups: limits cannot be applied (see
//!   [`Rootless::cgroups`]).
//!
//! Nothing here gives the user more than the user has: the namespaces are the
//! user's own, and the ID mapping is what the administrator granted in
//! /etc/subuid.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Set by the parent for the child (with the path of slirp4netns's API socket,
/// or empty without slirp4netns).
const CHILD_ENV: &str = "BERTH_ROOTLESS_CHILD";

/// slirp4netns's address for the child inside its network namespace.
pub const GUEST_ADDR: &str = "10.0.2.100";

/// How berthd runs.
pub enum Mode {
    /// As the host's root.
    Root,
    /// Started by an unprivileged user: become the parent of a rootless child.
    Parent,
    /// The rootless child, root in a user namespace of its own.
    Child(Rootless),
}

/// What the rootless child knows of its situation.
#[derive(Debug, Clone, Default)]
pub struct Rootless {
    /// slirp4netns's API socket, for published ports; None without it.
    pub slirp_api: Option<PathBuf>,
    /// A delegated cgroup v2 subtree: the containers' parent, below the
    /// cgroup2 mount; None: no cgroups at all.
    pub cgroup: Option<String>,
}

/// Set by the parent for the child: the containers' cgroup in a delegated
/// subtree.
const CGROUP_ENV: &str = "BERTH_ROOTLESS_CGROUP";

/// A cgroup v2 subtree the user may manage (systemd's `Delegate=yes`, a user
/// service's cgroup): the parent moves itself (and so the child it starts)
/// into a leaf `berthd` of its own cgroup, makes `containers` beside it and
/// gives it every controller the subtree has. Returns the containers' cgroup
/// below the cgroup2 mount; None where the user may not (no delegation).
fn delegate() -> Option<String> {
    use rustix::fs::Access;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .trim_start_matches('/')
        .to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })?;
    let dir = mount.join(&rel);
    for f in [
        dir.clone(),
        dir.join("cgroup.procs"),
        dir.join("cgroup.subtree_control"),
    ] {
        rustix::fs::access(&f, Access::WRITE_OK).ok()?;
    }
    let leaf = dir.join("berthd");
    let containers = dir.join("containers");
    std::fs::create_dir_all(&leaf).ok()?;
    std::fs::create_dir_all(&containers).ok()?;
    std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string()).ok()?;
    // As many controllers as the subtree has (none where another process
    // still shares the delegated cgroup, or on a hybrid host's cgroup2).
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in controllers.split_whitespace() {
        if std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}")).is_ok() {
            let _ = std::fs::write(containers.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
    let rel = format!("{rel}/containers");
    Some(rel.trim_start_matches('/').to_string())
}

impl Rootless {
    /// Where a rootless berthd keeps things unless told: Docker rootless's
    /// places ($XDG_DATA_HOME/berth, $XDG_RUNTIME_DIR/berth and berth.sock,
    /// $XDG_CONFIG_HOME/berth/daemon.json).
    pub fn defaults() -> Result<crate::config::RootlessDefaults> {
        let runtime = runtime_dir()?;
        let home = || {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .context("rootless berthd needs HOME (or XDG_DATA_HOME and XDG_CONFIG_HOME)")
        };
        let xdg = |var: &str, under_home: &str| -> Result<PathBuf> {
            match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(d) => Ok(PathBuf::from(d)),
                None => Ok(home()?.join(under_home)),
            }
        };
        Ok(crate::config::RootlessDefaults {
            data_root: xdg("XDG_DATA_HOME", ".local/share")?.join("berth"),
            exec_root: runtime.join("berth"),
            host: format!("unix://{}", runtime.join("berth.sock").display()),
            config_file: xdg("XDG_CONFIG_HOME", ".config")?.join("berth/daemon.json"),
        })
    }
}

fn runtime_dir() -> Result<PathBuf> {
    let d = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .context("rootless berthd needs XDG_RUNTIME_DIR (a directory of the user's own, like /run/user/UID)")?;
    Ok(d)
}

pub fn mode() -> Mode {
    if let Some(v) = std::env::var_os(CHILD_ENV) {
        if berth_runtime::in_user_namespace() {
            let api = PathBuf::from(v);
            return Mode::Child(Rootless {
                slirp_api: (!api.as_os_str().is_empty()).then_some(api),
                cgroup: std::env::var(CGROUP_ENV).ok().filter(|c| !c.is_empty()),
            });
        }
    }
    if rustix::process::geteuid().as_raw() != 0 {
        Mode::Parent
    } else {
        Mode::Root
    }
}

/// A program on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Writes one ID map with the setuid helper (`newuidmap`/`newgidmap`).
fn map_ids(helper: &str, pid: u32, own: u32, ranges: &[(u64, u64)]) -> Result<()> {
    let path = which(helper).with_context(|| {
        format!(
            "rootless berthd needs {helper} (Debian's uidmap package) to map the subordinate IDs"
        )
    })?;
    let mut cmd = std::process::Command::new(&path);
    cmd.arg(pid.to_string()).args(["0", &own.to_string(), "1"]);
    let mut next = 1u64;
    for (start, count) in ranges {
        cmd.args([next.to_string(), start.to_string(), count.to_string()]);
        next += count;
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{helper} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The parent: starts the rootless child and stays beside it until it exits.
pub fn run_parent() -> Result<std::process::ExitCode> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let runtime = runtime_dir()?;
    if !runtime.is_dir() {
        bail!("XDG_RUNTIME_DIR {} is not a directory", runtime.display());
    }
    let (subuids, subgids) = crate::daemon::userns::subordinate(uid, gid).map_err(|e| {
        anyhow::anyhow!("rootless berthd: {e} (add a range: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER)")
    })?;
    let pipe =
        || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("making a pipe");
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let slirp = which("slirp4netns");
    let api = runtime.join(format!("berth-slirp-{}.sock", std::process::id()));
    let mut cmd = std::process::Command::new("/proc/self/exe");
    std::os::unix::process::CommandExt::arg0(&mut cmd, "berthd");
    cmd.args(std::env::args_os().skip(1)).env(
        CHILD_ENV,
        if slirp.is_some() {
            api.as_os_str()
        } else {
            std::ffi::OsStr::new("")
        },
    );
    // Into a delegated cgroup subtree first, if the user has one: the child
    // starts there.
    match delegate() {
        Some(cg) => {
            cmd.env(CGROUP_ENV, cg);
        }
        None => {
            cmd.env_remove(CGROUP_ENV);
        }
    }
    berth_runtime::sys::unshare_before_exec(&mut cmd, ready_w, go_r);
    // The child says its pid once in its namespaces; the maps are written from
    // here while spawn waits for its exec.
    let mapper = std::thread::spawn(move || -> Result<u32> {
        let mut pid = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match rustix::io::read(&ready_r, &mut pid[got..]) {
                Ok(0) => bail!("the rootless child exited before entering its namespaces"),
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e).context("reading the child's pid"),
            }
        }
        let pid = i32::from_ne_bytes(pid) as u32;
        map_ids("newuidmap", pid, uid, &subuids)?;
        map_ids("newgidmap", pid, gid, &subgids)?;
        rustix::io::write(&go_w, b"1").context("letting the rootless child go")?;
        Ok(pid)
    });
    let spawned = cmd.spawn();
    drop(cmd);
    let mapped = mapper.join().expect("the mapping thread");
    let mut child = match (spawned, mapped) {
        (Ok(c), Ok(_)) => c,
        (Ok(mut c), Err(e)) => {
            let _ = c.kill();
            let _ = c.wait();
            return Err(e);
        }
        (Err(e), Err(m)) => return Err(m).context(e.to_string()),
        (Err(e), Ok(_)) => return Err(e).context("starting the rootless child"),
    };
    let pid = child.id();
    let mut slirp_child = match &slirp {
        Some(path) => Some(
            std::process::Command::new(path)
                .args(["--configure", "--mtu=65520", "--disable-host-loopback"])
                .arg("--api-socket")
                .arg(&api)
                .arg(pid.to_string())
                .arg("tap0")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", path.display()))?,
        ),
        None => {
            eprintln!("berthd: slirp4netns not found: containers reach nothing outside berthd's network namespace and published ports are not reachable from the host");
            None
        }
    };
    // Signals for berthd go to the child; the parent waits for its exit.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let status = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let child_pid = rustix::process::Pid::from_raw(pid as i32).expect("a child's pid");
        let pass = |s| {
            let _ = rustix::process::kill_process(child_pid, s);
        };
        let waiting = tokio::task::spawn_blocking(move || child.wait());
        tokio::pin!(waiting);
        loop {
            tokio::select! {
                r = &mut waiting => return r.expect("the wait task").map_err(anyhow::Error::from),
                _ = term.recv() => pass(rustix::process::Signal::TERM),
                _ = int.recv() => pass(rustix::process::Signal::INT),
                _ = hup.recv() => pass(rustix::process::Signal::HUP),
            }
        }
    });
    if let Some(s) = slirp_child.as_mut() {
        let _ = s.kill();
        let _ = s.wait();
    }
    let _ = std::fs::remove_file(&api);
    let status = status?;
    Ok(std::process::ExitCode::from(
        status.code().map_or(1, |c| c as u8),
    ))
}
