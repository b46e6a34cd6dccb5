//! The integration-test harness: a real berthd per test, on its own socket, data
//! root, exec root and cgroup parent, driven by the real docker CLI and by berth.
//! Dropping a [`Daemon`] stops it and then fails the test if anything it made is
//! left: mounts, shim processes, cgroups, files.
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The real docker CLI (client only).
pub const DOCKER: &str = "/usr/local/bin/docker";

/// Panics unless running as root: these tests create namespaces and mounts.
/// Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup on a pure v2 host,
/// /sys/fs/cgroup/unified on a hybrid one).
pub fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("reading mounts");
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount")
}

/// The unprivileged user rootless tests run berthd as (scripts/deps.sh makes
/// it, with a range in /etc/subuid and /etc/subgid).
pub const ROOTLESS_USER: &str = "berthrl";

/// [`ROOTLESS_USER`]'s uid and gid; the test fails if the user is missing.
pub fn rootless_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    let entry = passwd
        .lines()
        .find(|l| l.split(':').next() == Some(ROOTLESS_USER))
        .unwrap_or_else(|| {
            panic!("user {ROOTLESS_USER} is missing: scripts/deps.sh makes it (useradd -m {ROOTLESS_USER})")
        });
    let f: Vec<&str> = entry.split(':').collect();
    (f[2].parse().expect("uid"), f[3].parse().expect("gid"))
}

pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "the integration tests need root (CI runs them as root)"
    );
}

/// A binary of this workspace, built in the same profile as the test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A command's outcome.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts the exit code and returns stdout.
    #[track_caller]
    pub fn ok_or_code(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "unexpected exit: {self:?}");
        &self.stdout
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        &self.stdout
    }
}

pub fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Out {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning a command");
    let writer = stdin.map(|data| {
        let mut s = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        // A command may exit before reading all its input (an early error): EPIPE
        // here is not the test's concern, the command's output is.
        std::thread::spawn(move || {
            let _ = s.write_all(&data);
        })
    });
    let o = child.wait_with_output().expect("waiting for a command");
    if let Some(w) = writer {
        let _ = w.join();
    }
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn rand_hex() -> String {
    format!("{:08x}", rand::random::<u32>())
}

pub struct Daemon {
    pub root: tempfile::TempDir,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub socket: PathBuf,
    pub cgroup_parent: String,
    /// The default bridge's interface, unique to this daemon.
    pub bridge: String,
    child: Option<Child>,
    extra: Vec<String>,
    /// Shell commands run before berthd is exec'd in the same process (to hand it
    /// extra open descriptors, say).
    wrapper: Option<String>,
    /// Started as this unprivileged user (uid, gid): a rootless berthd.
    user: Option<(u32, u32)>,
    /// A cgroup2 directory delegated to that user (as systemd's Delegate=yes
    /// does it), which berthd is started in.
    delegated: Option<PathBuf>,
    /// daemon.json, written at each spawn.
    config: String,
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(&[])
    }

    /// Starts a berthd with extra flags, waiting for its READY=1 notification.
    pub fn start_with(extra: &[&str]) -> Daemon {
        Self::start_prepared(extra, |_| {})
    }

    /// Like [`Daemon::start_with`], with `json` as its daemon.json.
    pub fn start_configured(extra: &[&str], json: &str) -> Daemon {
        let mut d = Self::start_prepared(extra, |_| {});
        d.stop();
        d.config = json.to_string();
        d.spawn();
        d
    }

    /// Like [`Daemon::start_with`], with `prepare` run on the (not yet existing) data
    /// root's path first: to put it on a particular filesystem.
    pub fn start_prepared(extra: &[&str], prepare: impl FnOnce(&Path)) -> Daemon {
        let mut d = Self::unstarted(extra);
        prepare(&d.data_root);
        d.spawn();
        d
    }

    /// A daemon's places, nothing started.
    fn unstarted(extra: &[&str]) -> Daemon {
        require_root();
        let root = tempfile::Builder::new()
            .prefix("bt-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let tag = rand_hex();
        Daemon {
            data_root: root.path().join("data"),
            socket: root.path().join("berth.sock"),
            root,
            exec_root: PathBuf::from(format!("/run/bt-{tag}")),
            cgroup_parent: format!("berth-test-{tag}"),
            bridge: format!("bt{tag}"),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            wrapper: None,
            // BERTH_TEST_ROOTLESS=1: every daemon a test starts is rootless (the
            // suite's rootless subset, see scripts/test.sh).
            user: std::env::var_os("BERTH_TEST_ROOTLESS")
                .is_some_and(|v| v == "1")
                .then(rootless_user),
            delegated: None,
            config: "{}".into(),
        }
    }

    /// A rootless berthd started in a cgroup2 directory delegated to its user
    /// (the directory and its cgroup.procs, cgroup.subtree_control and
    /// cgroup.threads chowned to the user, as systemd delegates): its
    /// containers get cgroups there.
    pub fn start_rootless_delegated(extra: &[&str]) -> Daemon {
        let (uid, gid) = rootless_user();
        let mut d = Self::unstarted(extra);
        d.user = Some((uid, gid));
        let cg = cgroup2_mount().join(&d.cgroup_parent);
        std::fs::create_dir(&cg).expect("making the delegated cgroup");
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            std::os::unix::fs::chown(cg.join(f), Some(uid), Some(gid)).expect("delegating");
        }
        d.delegated = Some(cg);
        d.spawn();
        d
    }

    /// A rootless berthd: started as the unprivileged user [`ROOTLESS_USER`]
    /// (made by scripts/deps.sh, with subordinate IDs), with its own
    /// XDG_RUNTIME_DIR and HOME in the test's directory.
    pub fn start_rootless(extra: &[&str]) -> Daemon {
        let mut d = Self::unstarted(extra);
        d.user = Some(rootless_user());
        d.spawn();
        d
    }

    /// A rootless berthd's directories, the user's.
    fn prepare_for_user(&self, uid: u32, gid: u32) {
        let root = self.root.path();
        for dir in [root.join("xdg"), root.join("home"), self.exec_root.clone()] {
            std::fs::create_dir_all(&dir).expect("making the user's directories");
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
        }
        std::os::unix::fs::chown(root, Some(uid), Some(gid)).expect("chown");
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Starts berthd through `bash -c '<wrapper>; exec berthd ...'`: whatever the
    /// wrapper opens, berthd inherits, as it would from a careless parent.
    pub fn start_wrapped(wrapper: &str) -> Daemon {
        let mut d = Self::start_prepared(&[], |_| {});
        d.stop();
        d.wrapper = Some(wrapper.to_string());
        d.spawn();
        d
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Starts (again) the berthd process on the same roots.
    pub fn spawn(&mut self) {
        let notify = self.root.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify);
        if let Some((uid, gid)) = self.user {
            self.prepare_for_user(uid, gid);
        }
        let listener = UnixDatagram::bind(&notify).expect("binding the notify socket");
        if self.user.is_some() {
            std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o777))
                .expect("opening the notify socket to the user");
        }
        listener
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let config = self.root.path().join("daemon.json");
        std::fs::write(&config, &self.config).expect("writing daemon.json");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("berthd.log"))
            .expect("log file");
        let mut cmd = match (&self.delegated, &self.wrapper) {
            // Moved into the delegated cgroup as root, then the user.
            (Some(cg), _) => {
                let (uid, gid) = self.user.expect("a delegated cgroup has a user");
                let mut c = Command::new("bash");
                c.arg("-c")
                    .arg(format!(
                        "echo $$ > {}/cgroup.procs && exec setpriv --reuid={uid} --regid={gid} --clear-groups \"$0\" \"$@\"",
                        cg.display()
                    ))
                    .arg(bin("berthd"));
                c
            }
            (None, wrapper) => match wrapper {
                Some(w) => {
                    // bash: dash knows descriptors 0 to 9 only.
                    let mut c = Command::new("bash");
                    c.arg("-c")
                        .arg(format!("{w}\nexec \"$0\" \"$@\""))
                        .arg(bin("berthd"));
                    c
                }
                None => Command::new(bin("berthd")),
            },
        };
        if let (Some((uid, gid)), None) = (self.user, &self.delegated) {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        let child = cmd
            .arg("-H")
            .arg(self.host())
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--config-file")
            .arg(&config)
            .args(self.net_flags())
            .args(&self.extra)
            .env("NOTIFY_SOCKET", &notify)
            .envs(self.user.iter().flat_map(|_| {
                [
                    ("XDG_RUNTIME_DIR", self.root.path().join("xdg")),
                    ("HOME", self.root.path().join("home")),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting berthd");
        self.child = Some(child);
        let mut buf = [0u8; 128];
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match listener.recv(&mut buf) {
                Ok(n) if &buf[..n] == b"READY=1" => break,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && std::time::Instant::now() < deadline =>
                {
                    // A berthd that exited will never be ready: say so now.
                    if let Some(status) = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        panic!(
                            "berthd exited ({status}) before it was ready\n{}",
                            self.log()
                        );
                    }
                }
                Err(e) => panic!("berthd did not become ready: {e}\n{}", self.log()),
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("berthd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self) -> i32 {
        let Some(mut c) = self.child.take() else {
            return 0;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().expect("waiting for berthd").code().unwrap_or(-1)
    }

    /// SIGKILL: what a crash looks like to the shims.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn cli(&self, program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
        self.cli_env(program, args, stdin, &[])
    }

    /// Debian's docker CLI 20.10 (/usr/bin/docker, package docker.io) with extra
    /// environment variables (`DOCKER_BUILDKIT=1`: its BuildKit client).
    pub fn docker20_env(&self, env: &[(&str, &str)], args: &[&str]) -> Out {
        self.cli_env(Path::new("/usr/bin/docker"), args, None, env)
    }

    /// A Python script run with docker-py against this daemon (`client` is a
    /// `docker.DockerClient` of it).
    pub fn docker_py(&self, script: &str) -> Out {
        let mut cmd = Command::new("python3");
        cmd.arg("-c")
            .arg(format!(
                "import docker, sys\nclient = docker.DockerClient(base_url={:?})\n{script}",
                self.host()
            ))
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        run(cmd, None)
    }

    /// Debian's docker CLI 20.10 with extra environment variables and `stdin`.
    pub fn docker20_in(&self, env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Out {
        self.cli_env(Path::new("/usr/bin/docker"), args, Some(stdin), env)
    }

    /// The docker CLI with extra environment variables.
    pub fn docker_env(&self, env: &[(&str, &str)], args: &[&str]) -> Out {
        self.cli_env(Path::new(DOCKER), args, None, env)
    }

    fn cli_env(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
    ) -> Out {
        let mut cmd = Command::new(program);
        cmd.envs(env.iter().copied());
        cmd.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.path().join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false")
            // No program of the machine's: the docker CLI picks a credential
            // helper it finds on PATH (`pass`, `secretservice`) as its default
            // store, which would make logins depend on what the machine has
            // installed. A test that wants a helper sets up its own PATH.
            .env("PATH", self.root.path().join("cli-path"))
            .env_remove("BERTH_HOST");
        run(cmd, stdin)
    }

    pub fn docker(&self, args: &[&str]) -> Out {
        self.cli(Path::new(DOCKER), args, None)
    }

    pub fn docker_in(&self, args: &[&str], stdin: &[u8]) -> Out {
        self.cli(Path::new(DOCKER), args, Some(stdin))
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        self.cli(&bin("berth"), args, None)
    }

    pub fn berth_in(&self, args: &[&str], stdin: &[u8]) -> Out {
        self.cli(&bin("berth"), args, Some(stdin))
    }

    /// Builds the busybox test image (scripts/mkimage-busybox.sh) as `tag`, returning
    /// the archive's path.
    pub fn busybox_archive(&self, tag: &str) -> PathBuf {
        let out = self
            .root
            .path()
            .join(format!("{}.tar", tag.replace(['/', ':'], "_")));
        let mut cmd = Command::new(repo_root().join("scripts/mkimage-busybox.sh"));
        cmd.arg(&out).arg(tag);
        run(cmd, None).ok();
        out
    }

    /// A directory under this daemon's root (`ctx/<name>`) holding `files` (a
    /// build context).
    pub fn files(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.root.path().join("ctx").join(name);
        std::fs::create_dir_all(&dir).expect("context directory");
        for (f, content) in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("directory");
            std::fs::write(&p, content).expect("file");
        }
        dir
    }

    /// `docker run --rm ARGS`, which must succeed; its output.
    #[track_caller]
    pub fn run_rm(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        self.docker(&a).ok().to_string()
    }

    /// Loads the busybox test image as busybox:latest with the docker CLI.
    pub fn load_busybox(&self) {
        let tar = self.busybox_archive("busybox:latest");
        let o = self.docker(&["load", "-i", tar.to_str().expect("utf-8 path")]);
        assert!(o.ok().contains("Loaded image: busybox:latest"), "{o:?}");
    }

    /// A raw HTTP/1.1 request on the daemon's socket: (status, headers, body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
        use std::io::Read;
        let mut s =
            std::os::unix::net::UnixStream::connect(&self.socket).expect("connecting to berthd");
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("writing the request");
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).expect("reading the response");
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        (status, head.to_string(), body)
    }

    /// Its own default bridge and address pool, unless the test gives them: daemons
    /// run side by side.
    fn net_flags(&self) -> Vec<String> {
        let mut v = Vec::new();
        let has = |f: &str| {
            self.extra
                .iter()
                .any(|e| e == f || e.starts_with(&format!("{f}=")))
        };
        if !has("--bridge") && !has("-b") {
            v.extend(["--bridge".to_string(), self.bridge.clone()]);
        }
        if !has("--default-address-pool") {
            let second = 64 + rand::random::<u8>() % 180;
            v.extend([
                "--default-address-pool".to_string(),
                format!("base=10.{second}.0.0/16,size=24"),
            ]);
        }
        v
    }

    /// The bridges of this daemon's networks, from its network records.
    pub fn bridges(&self) -> Vec<String> {
        let mut out = vec![self.bridge.clone()];
        for e in std::fs::read_dir(self.data_root.join("network"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let rec: serde_json::Value = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            if let Some(b) = rec
                .get("bridge")
                .and_then(|b| b.as_str())
                .filter(|b| !b.is_empty())
            {
                if !out.iter().any(|o| o == b) {
                    out.push(b.to_string());
                }
            }
        }
        out
    }

    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Ok(mut nl) = berth_net::netlink::Netlink::new() {
            for b in self.bridges() {
                if nl.link_index(&b).ok().flatten().is_some() {
                    found.push(format!("bridge: {b}"));
                }
            }
        }
        let table = berth_net::nft::table_for(&self.data_root);
        if let Ok(o) = Command::new("nft")
            .args(["list", "table", "inet", &table])
            .output()
        {
            if o.status.success() {
                found.push(format!("nftables table: inet {table}"));
            }
        }
        let root = self.root.path().display().to_string();
        let exec = self.exec_root.display().to_string();
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in mi.lines() {
                if l.contains(&root) || l.contains(&exec) {
                    found.push(format!("mount: {l}"));
                }
            }
        }
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    if cmd.contains(&exec) || cmd.contains(&root) {
                        found.push(format!(
                            "process {}: {cmd}",
                            p.file_name().to_string_lossy()
                        ));
                    }
                }
            }
        }
        for h in cgroup_dirs(&self.cgroup_parent) {
            // A delegated cgroup holds the rootless berthd's own leaf and its
            // containers' parent by design: the containers' cgroups must be gone.
            let h = match &self.delegated {
                Some(cg) if *cg == h => cg.join("containers"),
                _ => h,
            };
            if let Ok(entries) = std::fs::read_dir(&h) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        found.push(format!("cgroup: {}", e.path().display()));
                    }
                }
            }
        }
        found
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until `f` holds, checking the daemon's observable state every 20 ms, for
/// states no event announces (a restart policy's back-off, a healthcheck). 30 s at
/// most.
#[track_caller]
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The parent of process `pid` (from /proc/PID/stat, after the command's
/// closing parenthesis, which may itself contain spaces and parentheses).
pub fn parent_pid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no parent pid in /proc/{pid}/stat: {stat}"))
}

/// The capabilities this (root) process holds, as /proc/self/status shows them:
/// all berthd, like it root, can give a container.
pub fn own_capabilities() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapPrm in /proc/self/status")
}

/// Waits for a process (not ours) to exit, on its pidfd: an event, not a sleep.
pub fn wait_pid_exit(pid: i32) {
    use rustix::event::{poll, PollFd, PollFlags};
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return; // already gone
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = rustix::event::Timespec {
        tv_sec: 60,
        tv_nsec: 0,
    };
    let n = poll(&mut fds, Some(&timeout)).expect("poll on a pidfd");
    assert_eq!(n, 1, "process {pid} did not exit within 60 s");
}

/// The per-daemon parent cgroup in every hierarchy.
/// A registry that wants a login (htpasswd: `builder`/`b4ild`) with busybox
/// pushed there as `HOST/base:1` by `d`, logged in, then removed from `d`'s store:
/// a private base image for FROM. The directory holds the registry's password file.
pub fn private_base(d: &Daemon) -> (TestRegistry, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("builder:{}\n", bcrypt::hash("b4ild", 5).expect("bcrypt")),
    )
    .expect("writing htpasswd");
    let reg = TestRegistry::start(&format!(
        "  htpasswd:\n    realm: berth-test\n    path: {}\n",
        htpasswd.display()
    ));
    d.docker(&["login", "-u", "builder", "-p", "b4ild", &reg.host()])
        .ok();
    let remote = format!("{}/base:1", reg.host());
    d.docker(&["tag", "busybox", &remote]).ok();
    d.docker(&["push", &remote]).ok();
    d.docker(&["rmi", &remote]).ok();
    (reg, dir, remote)
}

/// The directories of the cgroup parent `parent` in every hierarchy.
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    if base.join(parent).exists() {
        out.push(base.join(parent));
    }
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            let p = e.path().join(parent);
            if p.exists() {
                out.push(p);
            }
        }
    }
    out
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let left = self.leftovers();
        if !left.is_empty() {
            // Whatever berthd left, the machine does not keep.
            if let Ok(mut nl) = berth_net::netlink::Netlink::new() {
                for b in self.bridges() {
                    let _ = nl.delete_link(&b);
                }
            }
            let _ = berth_net::nft::remove(&berth_net::nft::table_for(&self.data_root));
        }
        for h in cgroup_dirs(&self.cgroup_parent) {
            let _ = std::fs::remove_dir(&h);
        }
        if let Some(cg) = &self.delegated {
            // What the rootless berthd made in its delegated cgroup, deepest first.
            let mut dirs: Vec<PathBuf> = Vec::new();
            let mut stack = vec![cg.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
                dirs.push(d);
            }
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
        let _ = std::fs::remove_dir_all(&self.exec_root);
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "berthd left things behind:\n{}\n--- berthd log ---\n{}",
                left.join("\n"),
                self.log()
            );
        }
    }
}

pub mod archive;

mod pty;
pub use pty::PtyCommand;

mod registry;
pub use registry::TestRegistry;

/// A helper process a test started (a plugin, a receiver): killed and reaped when
/// dropped, whatever the test's outcome.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
