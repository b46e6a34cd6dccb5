//! What the builder needs from the daemon, and nothing more: images, running a
//! step as a container, storing layers and cache records, committing the result.

use berth_api::ImageConfigBlob;
use std::future::Future;
use std::path::{Path, PathBuf};

/// A layer in the store: its diff id and unpacked size.
pub type Layer = (String, i64);

/// A filesystem state: an image configuration over layers.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub config: ImageConfigBlob,
    pub layers: Vec<Layer>,
}

/// Something the build streams to its client.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Text for the client's terminal (Docker's `stream`).
    Stream(String),
    /// Docker's `aux` (the image ID at the end).
    Aux(serde_json::Value),
    /// A step's progress (step `id` is its `Step N` number).
    Step {
        id: usize,
        name: String,
        state: StepState,
    },
    /// Output of the step `id` (a RUN's).
    Log { id: usize, text: String },
    /// Something about the Dockerfile the user should know (BuildKit's warnings).
    Warning(String),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum StepState {
    Started,
    Cached,
    Done {
        ms: u64,
    },
    /// With what went wrong, in a line (BuildKit's vertex error).
    Failed {
        error: String,
    },
}

pub type Output = tokio::sync::mpsc::UnboundedSender<Event>;

/// Says `text` to the client.
pub fn say(out: &Output, text: impl Into<String>) {
    let _ = out.send(Event::Stream(text.into()));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A mount of a RUN step, resolved to host paths.
#[derive(Debug, Clone)]
pub enum RunMount {
    /// A host directory or file (the context, or a view of another state); a
    /// read-write bind gets a scratch layer that is thrown away.
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    /// A persistent cache directory kept by the daemon under `id`.
    Cache {
        id: String,
        target: String,
        sharing: Sharing,
        uid: u32,
        gid: u32,
        mode: u32,
        /// Copied in when the cache is first made (`from`/`source`).
        seed: Option<PathBuf>,
        readonly: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    /// An SSH agent of the client's session, as a socket at `target`.
    Ssh {
        id: String,
        target: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// A secret from the client's session: a file on a tmpfs that goes with the
    /// step (never in a layer, the cache or the history).
    Secret {
        data: Vec<u8>,
        target: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
}

/// One RUN: the process, its environment and mounts, over a state.
#[derive(Debug, Clone)]
pub struct RunStep {
    /// The step's number (for its output's events).
    pub id: usize,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `default` (the build's network), `none` or `host`.
    pub network: String,
    pub mounts: Vec<RunMount>,
    /// `--security=insecure` (the daemon decides whether it allows it).
    pub insecure: bool,
}

/// The outcome of a RUN: its exit status and the layer of its changes.
#[derive(Debug)]
pub struct RunResult {
    pub exit_code: i64,
    /// The last lines of its output (for the error of a failed step).
    pub tail: Vec<String>,
    /// `None` when it changed nothing.
    pub layer: Option<Layer>,
}

/// A read-only view of a state's filesystem on the host, gone when dropped.
pub trait View: Send + Sync {
    fn path(&self) -> &Path;
}

pub trait Backend: Send + Sync + 'static {
    type View: View + 'static;

    /// The image `name` from the store (pulled when missing, or always with
    /// `pull`), with its ID.
    fn image(
        &self,
        name: &str,
        pull: bool,
        out: &Output,
    ) -> impl Future<Output = Result<(String, Snapshot), String>> + Send;

    /// Runs a step over `state` and returns the layer of its changes.
    fn run(
        &self,
        state: &Snapshot,
        step: &RunStep,
        out: &Output,
    ) -> impl Future<Output = Result<RunResult, String>> + Send;

    /// The layer directories of a state, topmost first (read without mounting).
    fn layer_dirs(&self, state: &Snapshot) -> Vec<PathBuf>;

    /// Mounts a read-only view of a state's filesystem.
    fn view(&self, state: &Snapshot) -> Result<Self::View, String>;

    /// A directory for the build's scratch files (removed with the build).
    fn scratch(&self) -> &Path;

    /// Stores the layer tar at `tar`; `None` when it holds nothing.
    fn add_layer(&self, tar: &Path) -> impl Future<Output = Result<Option<Layer>, String>> + Send;

    /// Downloads `url` into the file `dest`; returns its Last-Modified time.
    fn fetch(
        &self,
        url: &str,
        dest: &Path,
    ) -> impl Future<Output = Result<Option<u64>, String>> + Send;

    /// Clones the git repository `url` (`#ref[:subdir]`) into `dest`; returns the
    /// directory to copy (the subdirectory).
    fn clone_git(
        &self,
        url: &str,
        dest: &Path,
        keep_git_dir: bool,
    ) -> impl Future<Output = Result<PathBuf, String>> + Send;

    /// The secret `id` from the client's session; `None` when there is no session,
    /// it serves no secrets, or not this one.
    fn secret(&self, id: &str) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;

    /// Whether the client's session forwards the SSH agent `id`.
    fn ssh_agent(&self, id: &str) -> impl Future<Output = Result<bool, String>> + Send;

    /// A cached step result: the image configuration and the layers.
    fn cache_get(&self, key: &str) -> Option<(Vec<u8>, Vec<Layer>)>;
    fn cache_put(&self, key: &str, config: &[u8], layers: &[Layer]) -> Result<(), String>;

    /// Stores the final image with `tags`; returns its ID.
    fn commit(&self, config: &[u8], layers: &[Layer], tags: &[String]) -> Result<String, String>;
}
