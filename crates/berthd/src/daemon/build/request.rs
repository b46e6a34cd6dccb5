//! What a build was asked for.

use std::collections::BTreeMap;

/// What a BuildKit client's build sends back through its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutput {
    Tar,
    Local,
}

/// `POST /build`'s parameters.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub quiet: bool,
    pub no_cache: bool,
    pub pull: bool,
    pub memory: i64,
    pub memswap: i64,
    pub cpu_shares: i64,
    pub cpuset_cpus: String,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub build_args: BTreeMap<String, String>,
    pub shm_size: i64,
    pub labels: BTreeMap<String, String>,
    pub network_mode: String,
    pub platform: String,
    pub target: String,
    pub remote: Option<String>,
    pub build_id: Option<String>,
    pub ulimits: Vec<berth_api::Ulimit>,
    /// A BuildKit client's build (`version=2`): progress goes out as BuildKit's
    /// status.
    pub buildkit: bool,
    /// The client's session: a BuildKit client's context and outputs, or
    /// berth's secrets and SSH agents.
    pub session: Option<String>,
    /// Send the result's filesystem through the session (`-o type=tar` or
    /// `-o type=local`).
    pub session_output: Option<SessionOutput>,
    /// Images whose steps may stand for this build's (`cachefrom`).
    pub cache_from: Vec<String>,
    /// berth's client wants each step's progress (`berthprogress`), as `aux`.
    pub progress: bool,
    /// A context kept by the daemon (`berthcontext`, `berthgeneration`), with the
    /// list claimed for this build: the body holds only the files it asked for.
    pub kept_context: Option<(String, super::contexts::Claim)>,
    /// BuildKit's named contexts: a name and what it stands for
    /// (`docker-image://REF`, or `local:DIR`, a directory of the session).
    pub named_contexts: BTreeMap<String, String>,
    /// Credentials for the registries FROM pulls from (`X-Registry-Config`).
    pub auth: std::collections::HashMap<String, berth_registry::auth::Credentials>,
}
