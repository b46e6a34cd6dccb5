//! What a container is, as the daemon describes it to the shim. The daemon writes a
//! `Spec` as JSON into the container's exec-root directory; the shim reads it and
//! builds a [`crate::plan::Plan`] from it.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    pub id: String,
    pub rootfs: Overlay,
    pub process: Process,
    pub hostname: String,
    #[serde(default)]
    pub domainname: String,
    pub network: NetworkMode,
    /// Host files bind-mounted over a path inside the container
    /// (/etc/hostname, /etc/hosts, /etc/resolv.conf).
    #[serde(default)]
    pub files: Vec<FileBind>,
    /// Volumes, bind mounts and tmpfs mounts, in the order to make them (parents
    /// before children).
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// `--read-only`: the root filesystem is mounted read-only (mounts stay as given).
    #[serde(default)]
    pub readonly_rootfs: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub cgroup: CgroupSpec,
    /// Docker json-file log; `None` for `--log-driver none`.
    pub log_path: Option<PathBuf>,
    /// `max-size` in bytes and `max-file` of the json-file log.
    #[serde(default)]
    pub log_rotate: Option<(u64, u32)>,
    /// Rotated log files are gzipped (`compress=true`, the `local` driver).
    #[serde(default)]
    pub log_compress: bool,
    /// A log driver that sends each line elsewhere (syslog, gelf, fluentd,
    /// journald); `log_path` is then its local cache for `docker logs`.
    #[serde(default)]
    pub log_remote: Option<RemoteLog>,
    /// Descriptors the shim holds open for the container's life, handed over from
    /// [`crate::shimproto::HELD_FDS_START`] on: the sockets reserving its published
    /// host ports, so that no other program can take them while it runs.
    #[serde(default)]
    pub held_fds: u32,
    /// Held sockets the shim serves as a proxy to the container (a port published
    /// on IPv6 for a container with only IPv4, which no NAT can translate).
    #[serde(default)]
    pub proxies: Vec<PortProxy>,
    /// berth-sidecar, beside berth-shim: started for a remote log driver or port
    /// proxies (the shim, run from a sealed copy, cannot find its own directory).
    #[serde(default)]
    pub sidecar: Option<PathBuf>,
    /// Where the shim records the exit status (see [`crate::shimproto::ExitRecord`]).
    pub exit_path: PathBuf,
    /// Which namespaces are the container's own, the host's, or another's.
    #[serde(default)]
    pub namespaces: Namespaces,
    /// `--sysctl`: written under /proc/sys inside the container's namespaces,
    /// already checked against Docker's list of namespaced knobs.
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// `--shm-size` in bytes (Docker's 64 MiB when not given).
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// Device nodes made in the container's /dev (`--device`, `--privileged`).
    #[serde(default)]
    pub devices: Vec<Device>,
    /// `--privileged`: /sys (and the cgroup filesystem) writable.
    #[serde(default)]
    pub privileged: bool,
    /// `--security-opt writable-cgroups=true`: the cgroup filesystem writable.
    #[serde(default)]
    pub writable_cgroups: bool,
    /// On cgroup v1 and hybrid hosts, the hierarchies to mount below
    /// /sys/fs/cgroup (on a tmpfs), each showing the container's own cgroup as
    /// its root (they are mounted inside the container's cgroup namespace).
    #[serde(default)]
    pub cgroup_mounts: Vec<CgroupMount>,
    /// A user namespace of its own with this mapping (`--userns-remap`); None: the
    /// host's.
    #[serde(default)]
    pub userns: Option<IdMap>,
}

/// One cgroup hierarchy as the container sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupMount {
    /// Below /sys/fs/cgroup: "memory", "cpu", "systemd", "unified".
    pub name: String,
    /// "cgroup" (v1) or "cgroup2".
    pub fstype: String,
    /// The v1 controllers ("cpu,cpuacct", "none,name=systemd"); empty for v2.
    pub options: String,
}

/// Where a namespace comes from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NsSource {
    /// A new one, the container's own.
    #[default]
    Private,
    /// The host's (the shim's).
    Host,
    /// Another container's, handed to the shim as an fd
    /// ([`crate::shimproto::PIDNS_FD`], [`crate::shimproto::IPCNS_FD`]).
    Join,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Namespaces {
    #[serde(default)]
    pub pid: NsSource,
    #[serde(default)]
    pub ipc: NsSource,
    /// `--uts host`: the host's hostname, never set.
    #[serde(default)]
    pub uts_host: bool,
    /// `--cgroupns host`: no cgroup namespace of its own.
    #[serde(default)]
    pub cgroup_host: bool,
    /// `--ipc none`: no /dev/shm at all.
    #[serde(default)]
    pub no_shm: bool,
    /// A remapped container sharing another's namespaces (`--network
    /// container:X`): it joins X's user namespace, handed as
    /// [`crate::shimproto::USERNS_FD`], rather than making its own.
    #[serde(default)]
    pub user_join: bool,
}

/// Where and how the shim sends each log line (Docker's remote log drivers).
/// berthd checked the options and rendered the tag; the shim only encodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RemoteLog {
    /// "syslog", "gelf", "fluentd" or "journald".
    pub driver: String,
    /// `unix:///path`, `unixgram:///path`, `udp://host:port` or `tcp://host:port`.
    pub address: String,
    pub tag: String,
    /// The driver's own settings (`syslog-facility`, `gelf-compression-type`...).
    pub options: std::collections::BTreeMap<String, String>,
    /// `labels` and `env` picked from the container, sent with each line.
    pub extra: Vec<(String, String)>,
    /// `mode=non-blocking`: lines beyond `max_buffer` bytes waiting are dropped
    /// instead of holding the container's output.
    pub non_blocking: bool,
    pub max_buffer: u64,
    pub container_id: String,
    pub container_name: String,
    pub image_id: String,
    pub image_name: String,
    pub command: String,
    pub created: String,
    pub hostname: String,
    /// berth-tls-relay, beside berth-shim: what holds a `tcp+tls://` connection.
    #[serde(default)]
    pub tls_relay: Option<std::path::PathBuf>,
}

/// A published port the shim forwards itself: connections (TCP) or datagrams (UDP)
/// arriving on held socket `held` go to `target`, the container's address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortProxy {
    /// Index among the held descriptors.
    pub held: u32,
    /// "tcp" or "udp".
    pub proto: String,
    pub target: std::net::SocketAddr,
}

/// A device node to make inside the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    /// Absolute path inside the container, below /dev.
    pub path: String,
    /// 'c' or 'b'.
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    /// Permission bits of the node.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The host's node, bound in when the container has its own user namespace
    /// (where no node can be made).
    #[serde(default)]
    pub host_path: Option<PathBuf>,
}

impl Device {
    /// The device node `meta` describes (not followed if a symlink), with no
    /// path yet; None for anything but a character or block device.
    pub fn from_metadata(meta: &std::fs::Metadata) -> Option<Device> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            return None;
        };
        let rdev = meta.rdev();
        Some(Device {
            path: String::new(),
            kind,
            major: rustix::fs::major(rdev),
            minor: rustix::fs::minor(rdev),
            mode: meta.mode() & 0o777,
            uid: meta.uid(),
            gid: meta.gid(),
            host_path: None,
        })
    }
}

/// A user namespace's mapping (`--userns-remap`): container IDs to host IDs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// `container` to `container + size - 1` are `host` to `host + size - 1` on the host.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

impl IdMap {
    /// The text of /proc/PID/uid_map (or gid_map) for `ranges`.
    pub fn proc_text(ranges: &[IdRange]) -> String {
        ranges
            .iter()
            .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
            .collect()
    }

    /// The container ID of host ID `id`, if mapped.
    pub fn to_container(ranges: &[IdRange], id: u32) -> Option<u32> {
        ranges
            .iter()
            .find(|r| id >= r.host && id - r.host < r.size)
            .map(|r| r.container + (id - r.host))
    }

    /// A running process's mapping, from /proc/PID/uid_map and gid_map; None for
    /// the host's own (the identity over every ID).
    pub fn of_process(pid: i32) -> std::io::Result<Option<IdMap>> {
        let read = |f: &str| -> std::io::Result<Vec<IdRange>> {
            Ok(std::fs::read_to_string(format!("/proc/{pid}/{f}"))?
                .lines()
                .filter_map(|l| {
                    let v: Vec<u32> = l
                        .split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect();
                    (v.len() == 3).then(|| IdRange {
                        container: v[0],
                        host: v[1],
                        size: v[2],
                    })
                })
                .collect())
        };
        let uids = read("uid_map")?;
        let identity = |r: &[IdRange]| {
            r.len() == 1 && r[0].container == 0 && r[0].host == 0 && r[0].size == u32::MAX
        };
        if identity(&uids) {
            return Ok(None);
        }
        Ok(Some(IdMap {
            uids,
            gids: read("gid_map")?,
        }))
    }

    /// The host ID of container ID `id`, if mapped.
    pub fn to_host(ranges: &[IdRange], id: u32) -> Option<u32> {
        ranges
            .iter()
            .find(|r| id >= r.container && id - r.container < r.size)
            .map(|r| r.host + (id - r.container))
    }
}

/// A process to run inside a running container (`docker exec`), as berthd
/// describes it to an exec shim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecSpec {
    pub id: String,
    /// The container's init process, whose namespaces the process joins.
    pub container_pid: i32,
    /// The container's cgroup (joined, never created or removed).
    pub cgroup: CgroupSpec,
    pub process: Process,
    pub exit_path: PathBuf,
}

/// The container's root: an overlay of read-only image layers under a writable layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Overlay {
    /// Lower directories, topmost first (overlayfs `lowerdir` order).
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The mount point. The overlay is mounted only inside the container's own mount
    /// namespace, so it never shows in the host's mount table and disappears with the
    /// container.
    pub target: PathBuf,
    /// The vfs storage driver: this directory (a full copy of the image) is bound
    /// at `target` instead of an overlay.
    #[serde(default)]
    pub bind: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Capability bit numbers kept in the bounding set (and, for uid 0, in the
    /// permitted and effective sets).
    pub capabilities: Vec<u8>,
    /// A pseudo-terminal as stdin, stdout and stderr (`-t`).
    #[serde(default)]
    pub terminal: bool,
    /// Keep stdin open (`-i`): a pipe the shim holds, rather than /dev/null.
    #[serde(default)]
    pub open_stdin: bool,
    /// The terminal's size (rows, columns), when the client gave one.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Resource limits set before exec, already within the daemon's hard limits.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// The seccomp filter, compiled by the daemon; None for `seccomp=unconfined`.
    #[serde(default)]
    pub seccomp: Option<SeccompFilter>,
    /// `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// `--oom-score-adj` (-1000..1000), written before exec.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
}

/// A compiled seccomp program, as [`crate::seccomp::Program::encode`] packs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeccompFilter {
    pub program: Vec<u64>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2).
    #[serde(default)]
    pub flags: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_*` number.
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// Docker's ulimit names and their `RLIMIT_*` numbers.
pub const ULIMIT_NAMES: &[(&str, i32)] = &[
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A private network namespace with only loopback, brought up.
    Private,
    /// The host's network namespace.
    Host,
    /// A namespace berthd prepared (a bridge endpoint, or another container's),
    /// handed to the shim as descriptor [`crate::shimproto::NETNS_FD`].
    Join,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileBind {
    pub source: PathBuf,
    pub destination: String,
    /// Bound read-only (the init binary: a container must never write to a host file
    /// that is not its own).
    #[serde(default)]
    pub readonly: bool,
}

/// One mount inside the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: String,
    pub kind: MountKind,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host directory or file (volumes are directories under the data root),
    /// bound recursively, with the propagation given ("rprivate" by default).
    Bind {
        source: PathBuf,
        /// A file rather than a directory: the mount point is a file.
        #[serde(default)]
        file: bool,
        #[serde(default)]
        propagation: Option<String>,
        /// Bind only the top mount (`bind-recursive=disabled`).
        #[serde(default)]
        nonrecursive: bool,
        /// Seen through the container's ID mapping (`--userns-remap`): a volume's
        /// files keep the container's own IDs on disk, as the image layers do.
        #[serde(default)]
        idmap: bool,
        /// Opened without following any symbolic link (`RESOLVE_NO_SYMLINKS`):
        /// a source someone else writes (a managed plugin's volume, in its own
        /// directory) cannot be redirected to a host path by a link swapped in
        /// after berthd checked it.
        #[serde(default)]
        nofollow: bool,
    },
    /// A new tmpfs with these mount options (`size=`, `mode=`).
    Tmpfs {
        #[serde(default)]
        options: String,
        /// Allow executing programs from it (Docker's tmpfs is noexec by default).
        #[serde(default)]
        exec: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CgroupSpec {
    /// Path below each hierarchy's root, e.g. `berth/<id>`; empty for no cgroup
    /// at all (a rootless berthd without a delegated subtree).
    pub path: String,
    /// In a rootless berthd's delegated cgroup v2 subtree: the unified
    /// hierarchy only, and no eBPF device program (loading one needs
    /// privileges outside the user namespace; device nodes are binds there).
    #[serde(default)]
    pub delegated: bool,
    #[serde(default)]
    pub memory_limit: Option<i64>,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// `--memory-reservation`: a soft limit in bytes.
    #[serde(default)]
    pub memory_reservation: Option<i64>,
    /// `--memory-swap`: memory plus swap in bytes, -1 for unlimited swap.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// `--blkio-weight` (10..1000).
    #[serde(default)]
    pub blkio_weight: Option<u16>,
    #[serde(default)]
    pub cpu: CpuLimits,
    /// Device access rules allowed beyond Docker's defaults (`c 1:5 rwm`; `a`
    /// for everything, `--privileged`).
    #[serde(default)]
    pub device_rules: Vec<String>,
    /// `--oom-kill-disable` (cgroup v1 memory controller only).
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// `--memory-swappiness` (0..100; cgroup v1 memory controller only).
    #[serde(default)]
    pub memory_swappiness: Option<u64>,
    /// `--blkio-weight-device`: (major, minor, weight).
    #[serde(default)]
    pub blkio_weight_device: Vec<(u32, u32, u16)>,
    /// `--device-read-bps` and friends: (major, minor, rate) per kind.
    #[serde(default)]
    pub blkio_throttle: BlkioThrottle,
}

/// Block I/O limits per device: (major, minor, bytes or operations per second).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BlkioThrottle {
    #[serde(default)]
    pub read_bps: Vec<(u32, u32, u64)>,
    #[serde(default)]
    pub write_bps: Vec<(u32, u32, u64)>,
    #[serde(default)]
    pub read_iops: Vec<(u32, u32, u64)>,
    #[serde(default)]
    pub write_iops: Vec<(u32, u32, u64)>,
}

impl BlkioThrottle {
    pub fn is_empty(&self) -> bool {
        self.read_bps.is_empty()
            && self.write_bps.is_empty()
            && self.read_iops.is_empty()
            && self.write_iops.is_empty()
    }
}

/// CPU controls, as Docker's HostConfig gives them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CpuLimits {
    /// Relative weight (`--cpu-shares`, 2..262144).
    pub shares: Option<u64>,
    /// CFS quota and period in microseconds (`--cpus`, `--cpu-quota`, `--cpu-period`).
    pub quota: Option<i64>,
    pub period: Option<u64>,
    /// `--cpuset-cpus`, e.g. "0-1".
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`, e.g. "0".
    #[serde(default)]
    pub cpuset_mems: Option<String>,
    /// `--cpu-rt-period` and `--cpu-rt-runtime` in microseconds: the real-time
    /// scheduling budget (cgroup v1's cpu controller).
    #[serde(default)]
    pub rt_period: Option<u64>,
    #[serde(default)]
    pub rt_runtime: Option<i64>,
}

/// Paths Docker masks in every non-privileged container (moby's oci defaults).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in every non-privileged container.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `PATH` for a container whose image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
