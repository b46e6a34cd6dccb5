//! Control groups on v1, v2 and hybrid hosts. The hierarchy root and the mount table
//! are parameters, so tests can point them at a temporary directory.

use crate::spec::{CgroupSpec, CpuLimits};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup hierarchy is mounted under {0}")]
    NoHierarchy(PathBuf),
    #[error("creating cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("this kernel does not support {0}")]
    Unsupported(&'static str),
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing cgroup {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("restricting device access in {path} with an eBPF program")]
    Devices {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    DeviceRule(#[from] crate::devices::BadRule),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only cgroup v1 controllers.
    V1,
    /// A single cgroup2 hierarchy at the root.
    V2,
    /// v1 controllers plus a controller-less cgroup2 hierarchy at `<root>/unified`.
    Hybrid,
}

/// The host's cgroup layout, found once when the daemon or shim starts.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mode: Mode,
    /// The cgroup2 mount, if any.
    pub unified: Option<PathBuf>,
    /// Every v1 hierarchy mount point, with its comma-separated options.
    pub v1: Vec<(PathBuf, String)>,
}

/// The devices a container may use: Docker's defaults (moby's oci/defaults.go).
/// Any node may be created (`m`), only these may be opened.
pub const DEVICE_ALLOW: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

impl Hierarchy {
    /// Whether device access is restricted per container: by the v1 `devices`
    /// controller, or on pure cgroup v2 by an eBPF program ([`crate::devices`]).
    /// Without either, containers get `nodev` mounts instead.
    pub fn has_device_cgroup(&self) -> bool {
        self.v1_dir("devices").is_some() || (self.mode == Mode::V2 && self.unified.is_some())
    }

    /// No cgroups at all: a rootless berthd without a delegated cgroup v2
    /// subtree. Containers get no cgroup of their own (and so no limits, no
    /// device rules: their device nodes are binds of the host's).
    pub fn none() -> Self {
        Hierarchy {
            mode: Mode::V1,
            unified: None,
            v1: Vec::new(),
        }
    }

    /// The unified (cgroup2) hierarchy alone: a rootless berthd's delegated
    /// subtree is there, and the v1 hierarchies are not the user's.
    pub fn unified_only(&self) -> Self {
        Hierarchy {
            mode: self.mode,
            unified: self.unified.clone(),
            v1: Vec::new(),
        }
    }

    /// Whether this is [`Hierarchy::none`].
    pub fn is_none(&self) -> bool {
        self.unified.is_none() && self.v1.is_empty()
    }

    /// Reads the layout from a mount table (`/proc/self/mounts` format) for hierarchies
    /// under `root` (normally /sys/fs/cgroup).
    pub fn detect(root: &Path, mounts: &str) -> Result<Self, CgroupError> {
        let mut unified = None;
        let mut v1 = Vec::new();
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                continue;
            }
            let point = PathBuf::from(f[1]);
            if !point.starts_with(root) {
                continue;
            }
            match f[2] {
                "cgroup2" => unified = Some(point),
                "cgroup" => v1.push((point, f[3].to_string())),
                _ => {}
            }
        }
        let mode = match (&unified, v1.is_empty()) {
            (Some(u), true) if u == root => Mode::V2,
            (Some(_), false) => Mode::Hybrid,
            (None, false) => Mode::V1,
            _ => return Err(CgroupError::NoHierarchy(root.to_path_buf())),
        };
        Ok(Hierarchy { mode, unified, v1 })
    }

    /// "1" or "2", as `docker info` reports the cgroup version: hybrid hosts run their
    /// controllers on v1.
    pub fn version(&self) -> &'static str {
        match self.mode {
            Mode::V2 => "2",
            Mode::V1 | Mode::Hybrid => "1",
        }
    }

    fn v1_dir(&self, controller: &str) -> Option<&PathBuf> {
        self.v1
            .iter()
            .find(|(_, opts)| opts.split(',').any(|o| o == controller))
            .map(|(p, _)| p)
    }

    /// Whether the kernel schedules real-time tasks per cgroup (cgroup v1's cpu
    /// controller with `cpu.rt_runtime_us`; cgroup v2 has no such knob).
    pub fn has_rt(&self) -> bool {
        self.mode != Mode::V2
            && self
                .v1_dir("cpu")
                .is_some_and(|d| d.join("cpu.rt_runtime_us").exists())
    }

    /// Gives cgroup `rel` (the daemon's parent of all containers) a real-time
    /// budget its containers' own budgets come out of (dockerd's `--cpu-rt-period`
    /// and `--cpu-rt-runtime`).
    pub fn set_rt_budget(&self, rel: &str, period: u64, runtime: i64) -> Result<(), CgroupError> {
        let rel = rel.trim_start_matches('/');
        let Some(d) = self.v1_dir("cpu").map(|d| d.join(rel)) else {
            return Ok(());
        };
        mkdir_all(&d)?;
        write(&d.join("cpu.rt_period_us"), &period.to_string())?;
        write(&d.join("cpu.rt_runtime_us"), &runtime.to_string())
    }

    /// Applies CPU controls to an existing cgroup (`rel` below each hierarchy).
    pub fn set_cpu(&self, rel: &str, cpu: &CpuLimits) -> Result<(), CgroupError> {
        let rel = rel.trim_start_matches('/');
        if self.mode == Mode::V2 {
            let dir = self
                .unified
                .as_ref()
                .map(|u| u.join(rel))
                .unwrap_or_default();
            if let Some(s) = cpu.shares {
                // runc's conversion of shares (2..262144) to weight (1..10000).
                let weight = 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142;
                write(&dir.join("cpu.weight"), &weight.to_string())?;
            }
            if cpu.quota.is_some() || cpu.period.is_some() {
                let quota = cpu
                    .quota
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                write(
                    &dir.join("cpu.max"),
                    &format!("{quota} {}", cpu.period.unwrap_or(100_000)),
                )?;
            }
            if let Some(c) = &cpu.cpuset_cpus {
                write(&dir.join("cpuset.cpus"), c)?;
            }
            if let Some(m) = &cpu.cpuset_mems {
                write(&dir.join("cpuset.mems"), m)?;
            }
            return Ok(());
        }
        if let Some(d) = self.v1_dir("cpu").map(|d| d.join(rel)) {
            if let Some(s) = cpu.shares {
                write(&d.join("cpu.shares"), &s.to_string())?;
            }
            if let Some(p) = cpu.period {
                write(&d.join("cpu.cfs_period_us"), &p.to_string())?;
            }
            if let Some(q) = cpu.quota {
                write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
            }
            // The period first: the runtime must fit in it.
            if let Some(p) = cpu.rt_period {
                write(&d.join("cpu.rt_period_us"), &p.to_string())?;
            }
            if let Some(r) = cpu.rt_runtime {
                write(&d.join("cpu.rt_runtime_us"), &r.to_string())?;
            }
        }
        if let (Some(c), Some(d)) = (&cpu.cpuset_cpus, self.v1_dir("cpuset")) {
            write(&d.join(rel).join("cpuset.cpus"), c)?;
        }
        if let (Some(m), Some(d)) = (&cpu.cpuset_mems, self.v1_dir("cpuset")) {
            write(&d.join(rel).join("cpuset.mems"), m)?;
        }
        Ok(())
    }

    /// Sets the memory, pids and block I/O limits of an existing cgroup (at create,
    /// and for `docker update`); what is None is left as it is.
    pub fn set_limits(&self, path: &str, l: &Limits) -> Result<(), CgroupError> {
        let rel = path.trim_start_matches('/');
        let pids_value = |p: i64| {
            if p < 0 {
                "max".to_string()
            } else {
                p.to_string()
            }
        };
        if self.mode == Mode::V2 {
            let dir = self
                .unified
                .as_ref()
                .map(|u| u.join(rel))
                .unwrap_or_default();
            if let Some(m) = l.memory {
                write(&dir.join("memory.max"), &m.to_string())?;
            }
            if let Some(r) = l.reservation {
                write(&dir.join("memory.low"), &r.to_string())?;
            }
            // v2 limits swap alone: memory+swap less the memory.
            if let Some(s) = l.swap {
                let v = match (s, l.memory) {
                    (-1, _) => "max".to_string(),
                    (s, Some(m)) => (s - m).max(0).to_string(),
                    (s, None) => s.to_string(),
                };
                write(&dir.join("memory.swap.max"), &v)?;
            }
            if let Some(p) = l.pids {
                write(&dir.join("pids.max"), &pids_value(p))?;
            }
            if let Some(w) = l.blkio_weight {
                let (file, value) = if dir.join("io.weight").exists() {
                    ("io.weight", format!("default {w}"))
                } else if dir.join("io.bfq.weight").exists() {
                    ("io.bfq.weight", w.to_string())
                } else {
                    return Err(CgroupError::Unsupported("Block I/O weight"));
                };
                write(&dir.join(file), &value)?;
            }
            return Ok(());
        }
        if let Some(d) = self.v1_dir("memory").map(|d| d.join(rel)) {
            let memsw = d.join("memory.memsw.limit_in_bytes");
            if l.swap.is_some() && !memsw.exists() {
                return Err(CgroupError::Unsupported(
                    "swap limits (swap accounting is off)",
                ));
            }
            // The kernel keeps memory <= memory+swap at every step: which one moves
            // first depends on the direction.
            let set_memory = || {
                l.memory.map_or(Ok(()), |m| {
                    write(&d.join("memory.limit_in_bytes"), &m.to_string())
                })
            };
            let set_swap = || l.swap.map_or(Ok(()), |s| write(&memsw, &s.to_string()));
            if set_memory().is_err() {
                set_swap()?;
                set_memory()?;
            } else {
                set_swap()?;
            }
            if let Some(r) = l.reservation {
                write(&d.join("memory.soft_limit_in_bytes"), &r.to_string())?;
            }
        }
        if let (Some(p), Some(d)) = (l.pids, self.v1_dir("pids")) {
            write(&d.join(rel).join("pids.max"), &pids_value(p))?;
        }
        if let Some(w) = l.blkio_weight {
            let d = self.v1_dir("blkio").map(|d| d.join(rel));
            let file = d.as_ref().and_then(|d| {
                ["blkio.weight", "blkio.bfq.weight"]
                    .iter()
                    .map(|f| d.join(f))
                    .find(|f| f.exists())
            });
            match file {
                Some(f) => write(&f, &w.to_string())?,
                None => return Err(CgroupError::Unsupported("Block I/O weight")),
            }
        }
        Ok(())
    }

    /// Whether swap can be limited (swap accounting is on).
    pub fn has_swap_limit(&self) -> bool {
        match self.mode {
            Mode::V2 => self.unified.as_ref().is_some_and(|u| {
                fs::read_dir(u)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| e.path().join("memory.swap.max").exists())
            }),
            _ => self
                .v1_dir("memory")
                .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists()),
        }
    }

    /// Whether block I/O weights can be set (a cgroup with weights exists).
    /// Whether per-device block I/O limits can be set (v1 `blkio.throttle.*`, or
    /// the v2 `io` controller).
    pub fn has_blkio_throttle(&self) -> bool {
        match self.mode {
            Mode::V2 => self.has_blkio_weight(),
            _ => self
                .v1_dir("blkio")
                .is_some_and(|d| d.join("blkio.throttle.read_bps_device").exists()),
        }
    }

    /// Whether per-device block I/O weights can be set (v1 `blkio.weight_device`
    /// of the CFQ or BFQ scheduler; v2 `io.weight`).
    pub fn has_blkio_weight_device(&self) -> bool {
        match self.mode {
            Mode::V2 => self.has_blkio_weight(),
            _ => self.v1_dir("blkio").is_some_and(|d| {
                d.join("blkio.weight_device").exists() || d.join("blkio.bfq.weight_device").exists()
            }),
        }
    }

    /// Per-device weights and rate limits, written to `rel`'s block I/O files.
    fn set_blkio_devices(
        &self,
        rel: &str,
        weights: &[(u32, u32, u16)],
        t: &crate::spec::BlkioThrottle,
    ) -> Result<(), CgroupError> {
        if weights.is_empty() && t.is_empty() {
            return Ok(());
        }
        if self.mode == Mode::V2 {
            let Some(u) = &self.unified else {
                return Ok(());
            };
            let dir = u.join(rel);
            for (maj, min, w) in weights {
                write(&dir.join("io.weight"), &format!("{maj}:{min} {w}"))?;
            }
            for (key, list) in [
                ("rbps", &t.read_bps),
                ("wbps", &t.write_bps),
                ("riops", &t.read_iops),
                ("wiops", &t.write_iops),
            ] {
                for (maj, min, rate) in list {
                    write(&dir.join("io.max"), &format!("{maj}:{min} {key}={rate}"))?;
                }
            }
            return Ok(());
        }
        let Some(dir) = self.v1_dir("blkio").map(|d| d.join(rel)) else {
            return Ok(());
        };
        for (maj, min, w) in weights {
            let file = if dir.join("blkio.weight_device").exists() {
                "blkio.weight_device"
            } else {
                "blkio.bfq.weight_device"
            };
            write(&dir.join(file), &format!("{maj}:{min} {w}"))?;
        }
        for (file, list) in [
            ("blkio.throttle.read_bps_device", &t.read_bps),
            ("blkio.throttle.write_bps_device", &t.write_bps),
            ("blkio.throttle.read_iops_device", &t.read_iops),
            ("blkio.throttle.write_iops_device", &t.write_iops),
        ] {
            for (maj, min, rate) in list {
                write(&dir.join(file), &format!("{maj}:{min} {rate}"))?;
            }
        }
        Ok(())
    }

    pub fn has_blkio_weight(&self) -> bool {
        match self.mode {
            Mode::V2 => self.unified.as_ref().is_some_and(|u| {
                fs::read_to_string(u.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
            }),
            _ => self.v1_dir("blkio").is_some_and(|d| {
                d.join("blkio.weight").exists() || d.join("blkio.bfq.weight").exists()
            }),
        }
    }

    /// Freezes or thaws every process of a cgroup (`docker pause`): the v1 freezer
    /// where there is one, else `cgroup.freeze` of cgroup v2. Returns once the kernel
    /// reports the new state.
    pub fn freeze(&self, path: &str, frozen: bool) -> Result<(), CgroupError> {
        let rel = path.trim_start_matches('/');
        let (file, value, done) = match self.v1_dir("freezer") {
            Some(f) => (
                f.join(rel).join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
                None,
            ),
            None => {
                let u = self
                    .unified
                    .as_ref()
                    .ok_or_else(|| CgroupError::NoHierarchy(PathBuf::from("freezer")))?;
                let dir = u.join(rel);
                (
                    dir.join("cgroup.freeze"),
                    if frozen { "1" } else { "0" },
                    Some(dir.join("cgroup.events")),
                )
            }
        };
        write(&file, value)?;
        // Freezing is asynchronous: v1 passes through FREEZING, v2 reports "frozen 1"
        // in cgroup.events. A short bounded wait; the kernel takes microseconds.
        let want_v2 = if frozen { "frozen 1" } else { "frozen 0" };
        for _ in 0..1000 {
            let settled = match &done {
                None => fs::read_to_string(&file)
                    .map(|s| s.trim() == value)
                    .unwrap_or(true),
                Some(events) => fs::read_to_string(events)
                    .map(|s| s.lines().any(|l| l == want_v2))
                    .unwrap_or(true),
            };
            if settled {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    /// Resource usage of a cgroup, from whichever hierarchy carries each controller.
    pub fn stats(&self, path: &str) -> Stats {
        let rel = path.trim_start_matches('/');
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
        let num = |s: &str| s.trim().parse::<u64>().ok();
        let keyed = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let mut st = Stats::default();
        if self.mode == Mode::V2 {
            let dir = self
                .unified
                .as_ref()
                .map(|u| u.join(rel))
                .unwrap_or_default();
            let cpu = read(dir.join("cpu.stat"));
            st.cpu_total_ns = keyed(&cpu, "usage_usec").unwrap_or(0) * 1000;
            st.cpu_user_ns = keyed(&cpu, "user_usec").unwrap_or(0) * 1000;
            st.cpu_system_ns = keyed(&cpu, "system_usec").unwrap_or(0) * 1000;
            st.memory_usage = num(&read(dir.join("memory.current"))).unwrap_or(0);
            st.memory_inactive_file =
                keyed(&read(dir.join("memory.stat")), "inactive_file").unwrap_or(0);
            st.memory_limit = num(&read(dir.join("memory.max")));
            st.pids = num(&read(dir.join("pids.current"))).unwrap_or(0);
            st.pids_limit = num(&read(dir.join("pids.max")));
            for l in read(dir.join("io.stat")).lines() {
                let mut f = l.split_whitespace();
                let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
                    continue;
                };
                for kv in f {
                    let (op, key) = match kv.split_once('=') {
                        Some(("rbytes", v)) => ("read", v),
                        Some(("wbytes", v)) => ("write", v),
                        _ => continue,
                    };
                    if let (Ok(maj), Ok(min), Ok(v)) = (maj.parse(), min.parse(), key.parse()) {
                        st.io_bytes.push((maj, min, op.to_string(), v));
                    }
                }
            }
            return st;
        }
        let v1 = |c: &str| self.v1_dir(c).map(|d| d.join(rel));
        if let Some(d) = v1("cpuacct") {
            st.cpu_total_ns = num(&read(d.join("cpuacct.usage"))).unwrap_or(0);
            st.cpu_user_ns = num(&read(d.join("cpuacct.usage_user"))).unwrap_or(0);
            st.cpu_system_ns = num(&read(d.join("cpuacct.usage_sys"))).unwrap_or(0);
        }
        if let Some(d) = v1("memory") {
            st.memory_usage = num(&read(d.join("memory.usage_in_bytes"))).unwrap_or(0);
            st.memory_inactive_file =
                keyed(&read(d.join("memory.stat")), "total_inactive_file").unwrap_or(0);
            // v1 reports "no limit" as a huge page-aligned number.
            st.memory_limit =
                num(&read(d.join("memory.limit_in_bytes"))).filter(|l| *l < (1 << 62));
        }
        if let Some(d) = v1("pids") {
            st.pids = num(&read(d.join("pids.current"))).unwrap_or(0);
            st.pids_limit = num(&read(d.join("pids.max")));
        }
        if let Some(d) = v1("blkio") {
            for l in read(d.join("blkio.throttle.io_service_bytes_recursive")).lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                if let [dev, op, v] = f[..] {
                    if let (Some((maj, min)), Ok(v)) = (dev.split_once(':'), v.parse()) {
                        if let (Ok(maj), Ok(min)) = (maj.parse(), min.parse()) {
                            st.io_bytes.push((maj, min, op.to_ascii_lowercase(), v));
                        }
                    }
                }
            }
        }
        st
    }

    /// The processes in a cgroup.
    pub fn pids(&self, path: &str) -> Result<Vec<i32>, CgroupError> {
        let rel = path.trim_start_matches('/');
        let dir = match (&self.unified, self.v1.first()) {
            (Some(u), _) => u.join(rel),
            (None, Some((v, _))) => v.join(rel),
            (None, None) => return Err(CgroupError::NoHierarchy(PathBuf::from(rel))),
        };
        let procs = dir.join("cgroup.procs");
        let text = fs::read_to_string(&procs).map_err(|source| CgroupError::Read {
            path: procs,
            source,
        })?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// A running container's existing cgroup, for a process to join (`docker
    /// exec`): nothing is created, written or, later, removed.
    pub fn existing(&self, spec: &CgroupSpec) -> Cgroup {
        let rel = spec.path.trim_start_matches('/');
        let unified = self.unified.as_ref().map(|u| u.join(rel));
        let v1: Vec<PathBuf> = self.v1.iter().map(|(p, _)| p.join(rel)).collect();
        Cgroup {
            dirs: Vec::new(),
            unified,
            v1,
            mode: self.mode,
            memory: None,
        }
    }

    /// Creates the container's cgroup in every hierarchy and applies its limits.
    pub fn create(&self, spec: &CgroupSpec) -> Result<Cgroup, CgroupError> {
        let rel = spec.path.trim_start_matches('/');
        let mut cg = Cgroup {
            dirs: Vec::new(),
            unified: None,
            v1: Vec::new(),
            mode: self.mode,
            memory: None,
        };
        if let Some(u) = &self.unified {
            if self.mode == Mode::V2 {
                enable_controllers(u, rel);
            }
            let dir = u.join(rel);
            mkdir_all(&dir)?;
            cg.dirs.push(dir.clone());
            cg.unified = Some(dir.clone());
            if self.mode == Mode::V2 {
                cg.memory = Some(dir.clone());
            }
        }
        if let Some(dir) = &cg.unified {
            // The device rules as an eBPF program wherever there is a cgroup2
            // directory: the only restriction on pure v2, a second one beside v1's
            // controller on a hybrid host.
            // Where v1's controller enforces the same rules, a kernel that cannot
            // load the program loses nothing.
            if !spec.delegated {
                let attached = attach_device_rules(dir, &spec.device_rules);
                if self.v1_dir("devices").is_none() {
                    attached?;
                }
            }
        }
        for (point, opts) in &self.v1 {
            let dir = point.join(rel);
            if opts.split(',').any(|o| o == "cpuset") {
                mkdir_cpuset(point, rel)?;
            } else {
                mkdir_all(&dir)?;
            }
            cg.dirs.push(dir.clone());
            cg.v1.push(dir);
        }
        self.set_cpu(rel, &spec.cpu)?;
        if let Some(dev) = self.v1_dir("devices") {
            let dir = dev.join(rel);
            write(&dir.join("devices.deny"), "a")?;
            for rule in DEVICE_ALLOW {
                write(&dir.join("devices.allow"), rule)?;
            }
            for rule in &spec.device_rules {
                write(&dir.join("devices.allow"), rule)?;
            }
        }
        if self.mode != Mode::V2 {
            if let Some(mem) = self.v1_dir("memory") {
                cg.memory = Some(mem.join(rel));
                if spec.oom_kill_disable {
                    write(&mem.join(rel).join("memory.oom_control"), "1")?;
                }
                if let Some(s) = spec.memory_swappiness {
                    write(&mem.join(rel).join("memory.swappiness"), &s.to_string())?;
                }
            }
        }
        self.set_blkio_devices(rel, &spec.blkio_weight_device, &spec.blkio_throttle)?;
        self.set_limits(
            rel,
            &Limits {
                memory: spec.memory_limit,
                reservation: spec.memory_reservation,
                swap: spec.memory_swap,
                pids: spec.pids_limit,
                blkio_weight: spec.blkio_weight,
            },
        )?;
        Ok(cg)
    }
}

/// Limits of a cgroup; None leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<i64>,
    pub reservation: Option<i64>,
    /// Memory plus swap; -1 for unlimited swap.
    pub swap: Option<i64>,
    /// -1 for no limit.
    pub pids: Option<i64>,
    pub blkio_weight: Option<u16>,
}

/// Attaches the device program for Docker's defaults and `extra` to `dir`.
fn attach_device_rules(dir: &Path, extra: &[String]) -> Result<(), CgroupError> {
    let rules = crate::devices::rules(extra)?;
    let err = |source| CgroupError::Devices {
        path: dir.to_path_buf(),
        source,
    };
    let prog = crate::sys::load_device_program(&crate::devices::program(&rules)).map_err(err)?;
    let cg = fs::File::open(dir).map_err(err)?;
    use std::os::fd::AsFd;
    crate::sys::attach_device_program(cg.as_fd(), prog.as_fd()).map_err(err)
}

/// Turns on the controllers berth uses in every ancestor of `rel` on a pure v2 host.
/// A controller the kernel lacks is left off: its limits then fail when written.
fn enable_controllers(root: &Path, rel: &str) {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        for c in ["+memory", "+pids", "+cpu", "+io"] {
            let _ = fs::write(dir.join("cgroup.subtree_control"), c);
        }
        dir.push(part);
        let _ = fs::create_dir(&dir);
    }
    for c in ["+memory", "+pids", "+cpu", "+io"] {
        let _ = fs::write(dir.join("cgroup.subtree_control"), c);
    }
}

/// A v1 cpuset cgroup refuses tasks until its `cpus` and `mems` are set: each new
/// level inherits its parent's.
fn mkdir_cpuset(root: &Path, rel: &str) -> Result<(), CgroupError> {
    let mut dir = root.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        let parent = dir.clone();
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: dir, source }),
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read_to_string(dir.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = fs::read_to_string(parent.join(f)).unwrap_or_default();
                write(&dir.join(f), theirs.trim())?;
            }
        }
    }
    Ok(())
}

fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// A cgroup's usage, as `docker stats` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub memory_usage: u64,
    /// Page cache that can be dropped: Docker subtracts it from the usage it shows.
    pub memory_inactive_file: u64,
    /// None when unlimited.
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub pids_limit: Option<u64>,
    /// (major, minor, "read"/"write", bytes)
    pub io_bytes: Vec<(u64, u64, String, u64)>,
}

/// One container's cgroup across the hierarchies.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    unified: Option<PathBuf>,
    v1: Vec<PathBuf>,
    mode: Mode,
    memory: Option<PathBuf>,
}

impl Cgroup {
    /// The cgroup2 directory: a new process is created right in it
    /// (`clone3(CLONE_INTO_CGROUP)`), which needs no global lock.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// The v1 `tasks` files the process joins by writing its own thread id ("0"):
    /// moving a single thread skips the kernel's global cgroup_threadgroup_rwsem,
    /// whose write side waits for an RCU grace period per hierarchy (tens of ms
    /// on a busy host with ten hierarchies).
    pub fn v1_task_files(&self) -> Vec<PathBuf> {
        self.v1.iter().map(|d| d.join("tasks")).collect()
    }

    /// Moves a process into the cgroup2 directory from outside: the fallback for
    /// kernels without CLONE_INTO_CGROUP.
    pub fn add_pid_unified(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.unified {
            Some(d) => write(&d.join("cgroup.procs"), &pid.to_string()),
            None => Ok(()),
        }
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = &self.memory else {
            return false;
        };
        let file = match self.mode {
            Mode::V2 => "memory.events",
            Mode::V1 | Mode::Hybrid => "memory.oom_control",
        };
        fs::read_to_string(dir.join(file))
            .map(|s| {
                s.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
            .unwrap_or(false)
    }

    /// Removes the cgroup once it is empty. The kernel frees a cgroup a moment after
    /// its last process is reaped, so EBUSY is retried briefly.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for d in &self.dirs {
            let mut tries = 0;
            loop {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(source) => {
                        return Err(CgroupError::Remove {
                            path: d.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
        cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";

    #[test]
    fn detects_hybrid_v1_and_v2() {
        let root = Path::new("/sys/fs/cgroup");
        let h = Hierarchy::detect(root, HYBRID).unwrap();
        assert_eq!(h.mode, Mode::Hybrid);
        assert_eq!(h.version(), "1");
        let v1 = HYBRID.replace("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n", "");
        assert_eq!(Hierarchy::detect(root, &v1).unwrap().mode, Mode::V1);
        let v2 = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
        let h = Hierarchy::detect(root, v2).unwrap();
        assert_eq!((h.mode, h.version()), (Mode::V2, "2"));
        assert!(Hierarchy::detect(root, "proc /proc proc rw 0 0\n").is_err());
    }

    #[test]
    fn creates_limits_and_removes_in_a_fake_v1_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let mounts = format!(
            "cgroup {0}/memory cgroup rw,memory 0 0\ncgroup {0}/pids cgroup rw,pids 0 0\ncgroup {0}/devices cgroup rw,devices 0 0\n",
            root.display()
        );
        let h = Hierarchy::detect(root, &mounts).unwrap();
        let cg = h
            .create(&CgroupSpec {
                path: "berth/abc".into(),
                memory_limit: Some(64 << 20),
                pids_limit: Some(10),
                memory_reservation: Some(32 << 20),
                ..Default::default()
            })
            .unwrap();
        let mem = root.join("memory/berth/abc/memory.limit_in_bytes");
        assert_eq!(fs::read_to_string(mem).unwrap(), (64u64 << 20).to_string());
        assert_eq!(
            fs::read_to_string(root.join("memory/berth/abc/memory.soft_limit_in_bytes")).unwrap(),
            (32u64 << 20).to_string()
        );
        // No swap accounting in this tree: a swap limit is refused, by name.
        let e = h
            .set_limits(
                "berth/abc",
                &Limits {
                    swap: Some(1 << 30),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("swap"), "{e}");
        assert!(!h.has_swap_limit());
        assert_eq!(
            fs::read_to_string(root.join("pids/berth/abc/pids.max")).unwrap(),
            "10"
        );
        assert!(h.has_device_cgroup());
        fs::write(root.join("memory/berth/abc/memory.usage_in_bytes"), "1000").unwrap();
        fs::write(
            root.join("memory/berth/abc/memory.stat"),
            "cache 5\ntotal_inactive_file 300\n",
        )
        .unwrap();
        fs::write(root.join("pids/berth/abc/pids.current"), "3\n").unwrap();
        let st = h.stats("berth/abc");
        assert_eq!(
            (st.memory_usage, st.memory_inactive_file, st.memory_limit),
            (1000, 300, Some(64 << 20))
        );
        assert_eq!((st.pids, st.pids_limit), (3, Some(10)));
        // A plain directory keeps only the last write: the last allow rule.
        assert_eq!(
            fs::read_to_string(root.join("devices/berth/abc/devices.allow")).unwrap(),
            "c 136:* rwm"
        );
        assert_eq!(
            fs::read_to_string(root.join("devices/berth/abc/devices.deny")).unwrap(),
            "a"
        );
        fs::write(
            root.join("memory/berth/abc/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
    }
}
