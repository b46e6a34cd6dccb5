//! A container's persisted record and its live handle.

use berth_api::ExecConfig;
use berth_api::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};

/// Docker's zero time, shown for StartedAt/FinishedAt before the first start/exit.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
    Removing,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    /// Frozen by `docker pause` (the status stays Running, as in Docker's model).
    #[serde(default)]
    pub paused: bool,
    /// Waiting out a restart policy's back-off.
    #[serde(default)]
    pub restarting: bool,
    /// Healthcheck results, when the container has a healthcheck.
    #[serde(default)]
    pub health: Option<Health>,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            oom_killed: false,
            paused: false,
            restarting: false,
            health: None,
        }
    }
}

impl RunState {
    /// Docker's `State.Status`: "paused" for a paused running container.
    pub fn status_text(&self) -> &'static str {
        if self.paused && self.status == Status::Running {
            "paused"
        } else if self.restarting {
            "restarting"
        } else {
            self.status.as_str()
        }
    }
}

/// Everything berth keeps about a container, stored as JSON in the database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: String,
    /// The image ID (`sha256:...`); `config.image` keeps the name the user gave.
    pub image: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: RunState,
    pub restart_count: i64,
    /// Stopped by a user (stop, kill): restart policies leave it stopped.
    #[serde(default)]
    pub manually_stopped: bool,
    /// The networks the container is attached to, by network name.
    #[serde(default)]
    pub endpoints: std::collections::BTreeMap<String, Endpoint>,
    /// Host ports published while it runs.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// Volumes, bind mounts and tmpfs mounts.
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// A removal under way takes the anonymous volumes too (`rm -v`, `--rm`): kept
    /// so that berthd can finish the removal after a crash.
    #[serde(default)]
    pub remove_volumes: bool,
}

/// A container's attachment to a network: what was asked at create or connect, and
/// (while it runs) what it got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Endpoint {
    pub network_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default)]
    pub want_ipv4: Option<std::net::IpAddr>,
    #[serde(default)]
    pub want_ipv6: Option<std::net::IpAddr>,
    #[serde(default)]
    pub want_mac: Option<String>,
    #[serde(default)]
    pub endpoint_id: String,
    #[serde(default)]
    pub ipv4: Option<std::net::IpAddr>,
    #[serde(default)]
    pub prefix4: u8,
    #[serde(default)]
    pub gateway4: Option<std::net::IpAddr>,
    #[serde(default)]
    pub ipv6: Option<std::net::IpAddr>,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default)]
    pub gateway6: Option<std::net::IpAddr>,
    #[serde(default)]
    pub mac: String,
    /// The interface inside the container (eth0, eth1, ...).
    #[serde(default)]
    pub ifname: String,
}

impl Endpoint {
    /// Forgets what the last run got (the container stopped).
    pub fn clear_live(&mut self) {
        self.endpoint_id.clear();
        self.ipv4 = None;
        self.prefix4 = 0;
        self.gateway4 = None;
        self.ipv6 = None;
        self.prefix6 = 0;
        self.gateway6 = None;
        self.mac.clear();
        self.ifname.clear();
    }
}

/// One published port of a running container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublishedPort {
    pub container_port: u16,
    /// "tcp", "udp" or "sctp".
    pub proto: String,
    pub host_ip: String,
    pub host_port: u16,
}

/// What waiters watch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub running: bool,
    pub exit_code: i64,
    /// How many times the container has exited since berthd loaded it.
    pub exits: u64,
    pub removed: bool,
    pub error: String,
}

/// An attach that arrived before start: the start connects it to the shim.
pub type PendingAttach = (u8, oneshot::Sender<UnixStream>);

/// Where attaches go. One mutex covers both fields, so that an attach is either
/// handed to a start or finds the shim's socket live: none can fall between.
#[derive(Default)]
pub struct AttachState {
    /// The shim's socket is bound and the shim has not reported an exit.
    pub live: bool,
    pub pending: Vec<PendingAttach>,
}

pub struct Container {
    pub id: String,
    rec: Mutex<Record>,
    /// Serialises start, stop, restart and remove of this container.
    pub op: std::sync::Arc<tokio::sync::Mutex<()>>,
    pub watch: watch::Sender<Snapshot>,
    pub attach: Mutex<AttachState>,
    /// The running process, for signals that cannot hit a recycled pid.
    pub pidfd: Mutex<Option<OwnedFd>>,
    /// The next restart's delay (restart policies' back-off).
    pub backoff: Mutex<std::time::Duration>,
    /// The last stats sample's CPU figures and time, for the next one's precpu.
    pub stats_prev: Mutex<Option<(serde_json::Value, String)>>,
    /// A removal (a client's or `--rm`'s) is under way: another is told so, as
    /// Docker's RemovalInProgress. In memory only: a crash ends every removal.
    pub removing: std::sync::atomic::AtomicBool,
}

impl Container {
    pub fn new(rec: Record) -> Container {
        let snap = Snapshot {
            running: rec.state.status == Status::Running,
            exit_code: rec.state.exit_code,
            ..Snapshot::default()
        };
        Container {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            op: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            watch: watch::channel(snap).0,
            attach: Mutex::new(AttachState::default()),
            pidfd: Mutex::new(None),
            backoff: Mutex::new(FIRST_RESTART_DELAY),
            stats_prev: Mutex::new(None),
            removing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn rec(&self) -> MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Record {
        self.rec().clone()
    }

    pub fn is_running(&self) -> bool {
        self.rec().state.status == Status::Running
    }

    pub fn attach_state(&self) -> MutexGuard<'_, AttachState> {
        self.attach.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> String {
        self.rec().name.clone()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthResult>,
}

/// One mount of a container, as recorded at create (Docker's MountPoint).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MountPoint {
    /// "bind", "volume" or "tmpfs".
    pub kind: String,
    /// The host path of a bind, the name of a volume, "" for tmpfs.
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// Docker's Mode text ("ro", "z", ...), shown by inspect.
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub propagation: String,
    /// Do not populate a new volume from the image.
    #[serde(default)]
    pub nocopy: bool,
    #[serde(default)]
    pub nonrecursive: bool,
    /// tmpfs mount options (size=, mode=...).
    #[serde(default)]
    pub tmpfs_options: String,
    #[serde(default)]
    pub tmpfs_exec: bool,
    /// A volume made for this container alone.
    #[serde(default)]
    pub anonymous: bool,
    /// `--mount volume-driver=`: who makes the volume if it does not exist.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// `--mount volume-opt=`: the driver's options for a volume made here.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub driver_opts: std::collections::BTreeMap<String, String>,
    /// `--mount volume-label=`: labels of a volume made here.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--mount volume-subpath=`: only this directory of the volume is mounted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

/// The first restart back-off; it doubles up to a minute (restart.rs).
pub const FIRST_RESTART_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// An exec instance: kept in memory only, until its container is removed.
#[derive(Debug, Default, Clone)]
pub struct ExecState {
    pub started: bool,
    pub running: bool,
    pub pid: i64,
    pub exit_code: Option<i64>,
    /// Why the process did not start, in Docker's words.
    pub error: String,
}

pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub(super) state: Mutex<ExecState>,
    /// Becomes true once the exit (or the failure to start) is recorded.
    pub done: watch::Sender<bool>,
}

impl Exec {
    pub fn state(&self) -> MutexGuard<'_, ExecState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn finish(&self, exit_code: i64, error: String) {
        {
            let mut st = self.state();
            st.running = false;
            st.exit_code = Some(exit_code);
            st.error = error;
        }
        self.done.send_replace(true);
    }
}

/// "name:alias" (alias defaults to the name).
pub fn parse_link(l: &str) -> (&str, &str) {
    let (t, a) = l.split_once(':').unwrap_or((l, l));
    (t.trim_start_matches('/'), a.rsplit('/').next().unwrap_or(a))
}
