//! The build: the stages the target needs, each started as soon as the stages it
//! reads from are done (independent stages run at the same time), every step
//! looked up in the cache by a key made of its parent's key, its instruction with
//! the variables it sees, and the checksum of the files it copies.

mod copy;
mod dispatch;
mod run;

pub use dispatch::duration_ns;
pub use run::parse_size;

use crate::backend::{say, Backend, Event, Output, Snapshot, StepState};
use crate::ignore::Ignore;
use crate::instruction::instruction;
use crate::parser::ParseError;
use crate::shell::{self, Vars};
use crate::stages::{Plan, Source};
use berth_api::{ContainerConfig, HistoryEntry, ImageConfigBlob, RootFs};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const COMMENT: &str = "buildkit.dockerfile.v0";
/// Build args every build accepts without an ARG, left out of the history.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The Dockerfile's name, for messages.
    pub dockerfile: String,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    /// The build's network mode for RUN (`default`, `none`, `host`).
    pub network: String,
    /// `os/arch[/variant]` of the result (the host's when empty).
    pub platform: String,
    pub tags: Vec<String>,
    pub created: String,
    /// Images whose steps may stand for this build's (`--cache-from`).
    pub cache_from: Vec<String>,
    /// Names that stand for an image or a directory wherever the Dockerfile names
    /// an image (`FROM`, `--from`): BuildKit's named contexts.
    pub named_contexts: BTreeMap<String, NamedContext>,
}

/// What a named context stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedContext {
    /// Another image (`docker-image://REF`).
    Image(String),
    /// A directory's files, as a one-layer filesystem (`local:NAME` of a session).
    Dir(std::path::PathBuf),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    #[error("failed to solve: {file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    #[error("failed to solve: {file}:{line}: {instruction}: {message}")]
    Step {
        file: String,
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("failed to solve: {0}")]
    Other(String),
}

impl BuildError {
    fn parse(file: &str, e: ParseError) -> BuildError {
        BuildError::Parse {
            file: file.to_string(),
            line: e.line,
            message: e.to_string(),
        }
    }
}

/// What a finished build made.
#[derive(Debug)]
pub struct Built {
    pub id: String,
    pub steps: usize,
    pub cached: usize,
}

/// The context: where its files are and what `.dockerignore` leaves out.
pub struct Context {
    pub dir: PathBuf,
    pub ignore: Ignore,
}

struct Shared<B: Backend> {
    backend: Arc<B>,
    plan: Plan,
    opts: Options,
    context: Context,
    meta: Vars,
    out: Output,
    /// Each needed stage's result, when done.
    results: HashMap<usize, tokio::sync::watch::Receiver<Option<Result<State, BuildError>>>>,
    /// Step numbers for `Step N/M`.
    numbers: HashMap<(usize, usize), usize>,
    total: usize,
    counts: std::sync::Mutex<(usize, usize)>,
    used_args: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Steps of the `--cache-from` images, by cache key: their history entry and
    /// the layer they added.
    imports: HashMap<String, (HistoryEntry, Option<crate::backend::Layer>)>,
}

#[derive(Debug, Clone)]
struct State {
    snap: Snapshot,
    key: String,
    /// The last step came from the cache.
    cached: bool,
    /// ARGs in scope: name and value (unset ones have none).
    args: BTreeMap<String, Option<String>>,
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Runs the build: returns the image ID (and has streamed the steps to `out`).
pub async fn build<B: Backend>(
    backend: Arc<B>,
    dockerfile_text: &str,
    context: Context,
    opts: Options,
    out: Output,
) -> Result<Built, BuildError> {
    let plan = Plan::parse(dockerfile_text).map_err(|e| BuildError::parse(&opts.dockerfile, e))?;
    for w in &plan.warnings {
        let _ = out.send(Event::Warning(w.clone()));
    }
    let platform = if opts.platform.is_empty() {
        format!("linux/{}", host_arch())
    } else {
        opts.platform.clone()
    };
    let mut parts = platform.split('/');
    let (os, arch, variant) = (
        parts.next().unwrap_or("linux").to_string(),
        parts.next().unwrap_or(host_arch()).to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    // The global scope: automatic platform args, then the ARGs before FROM.
    let mut meta: Vars = [
        ("TARGETPLATFORM", platform.clone()),
        ("TARGETOS", os.clone()),
        ("TARGETARCH", arch.clone()),
        ("TARGETVARIANT", variant.clone()),
        ("BUILDPLATFORM", format!("linux/{}", host_arch())),
        ("BUILDOS", "linux".into()),
        ("BUILDARCH", host_arch().into()),
        ("BUILDVARIANT", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut used = std::collections::BTreeSet::new();
    for (name, default) in &plan.meta_args {
        if let Some(v) = opts.build_args.get(name) {
            meta.insert(name.clone(), v.clone());
            used.insert(name.clone());
        } else if let Some(d) = default {
            let v = shell::expand(d, &meta, plan.escape)
                .map_err(|e| BuildError::Other(e.to_string()))?;
            meta.insert(name.clone(), v);
        }
    }
    let target = plan
        .target(opts.target.as_deref())
        .map_err(BuildError::Other)?;
    let needed = plan.needed(target, &meta).map_err(BuildError::Other)?;
    let mut numbers = HashMap::new();
    let mut total = 0;
    for &s in &needed {
        for i in 0..=plan.stages[s].instructions.len() {
            total += 1;
            numbers.insert((s, i), total);
        }
    }
    let mut senders = HashMap::new();
    let mut results = HashMap::new();
    for &s in &needed {
        let (tx, rx) = tokio::sync::watch::channel(None);
        senders.insert(s, tx);
        results.insert(s, rx);
    }
    // `--cache-from`: the keys berth recorded in those images, each with its step.
    let mut imports = HashMap::new();
    for name in &opts.cache_from {
        match backend.image(name, false, &out).await {
            Ok((_, snap)) => {
                let keys = cache_keys(&snap.config);
                let mut layers = snap.layers.iter();
                for (h, k) in snap.config.history.iter().zip(keys) {
                    let layer = if h.empty_layer {
                        None
                    } else {
                        layers.next().cloned()
                    };
                    if !k.is_empty() {
                        imports.insert(k, (h.clone(), layer));
                    }
                }
            }
            Err(e) => say(&out, format!("[WARNING]: cache-from {name}: {e}\n")),
        }
    }
    let shared = Arc::new(Shared {
        backend,
        plan,
        opts,
        context,
        meta,
        out: out.clone(),
        results,
        numbers,
        total,
        counts: std::sync::Mutex::new((0, 0)),
        used_args: std::sync::Mutex::new(used),
        imports,
    });
    // Every needed stage at once: each waits for what it reads from.
    let mut tasks = tokio::task::JoinSet::new();
    for &s in &needed {
        let sh = shared.clone();
        let tx = senders.remove(&s).expect("a sender per stage");
        tasks.spawn(async move {
            let r = sh.stage(s).await;
            let failed = r.is_err();
            let _ = tx.send(Some(r));
            failed
        });
    }
    let mut target_rx = shared.results[&target].clone();
    let result = loop {
        tokio::select! {
            r = target_rx.wait_for(|v| v.is_some()) => {
                break r.map_err(|_| BuildError::Other("the build stopped".into()))?.clone().expect("set");
            }
            Some(done) = tasks.join_next() => {
                if let Ok(true) = done {
                    // A failed stage fails the build (its error, not a dependant's).
                    let first = shared.results.values().find_map(|rx| match &*rx.borrow() {
                        Some(Err(e)) => Some(e.clone()),
                        _ => None,
                    });
                    if let Some(e) = first {
                        break Err(e);
                    }
                }
            }
        }
    };
    // Other stages still running (none the target needs) stop here.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let state = result?;
    let unused: Vec<String> = {
        let used = shared.used_args.lock().unwrap_or_else(|p| p.into_inner());
        shared
            .opts
            .build_args
            .keys()
            .filter(|k| !used.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    if !unused.is_empty() {
        say(
            &out,
            format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            ),
        );
    }
    let mut blob = state.snap.config.clone();
    if !shared.opts.labels.is_empty() {
        let c = blob.config.get_or_insert_with(Default::default);
        let labels = c.labels.get_or_insert_with(Default::default);
        for (k, v) in &shared.opts.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    blob.created = blob
        .history
        .last()
        .and_then(|h| h.created.clone())
        .or(Some(shared.opts.created.clone()));
    let bytes = serde_json::to_vec(&blob).expect("config serialises");
    let id = shared
        .backend
        .commit(&bytes, &state.snap.layers, &shared.opts.tags)
        .map_err(BuildError::Other)?;
    let (steps, cached) = *shared.counts.lock().unwrap_or_else(|p| p.into_inner());
    let _ = out.send(Event::Aux(serde_json::json!({ "ID": id })));
    let short = id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect::<String>();
    say(&out, format!("Successfully built {short}\n"));
    for t in &shared.opts.tags {
        say(&out, format!("Successfully tagged {t}\n"));
    }
    Ok(Built { id, steps, cached })
}

/// The field where berth keeps, for each history entry of an image it built, the
/// cache key of the step that made it (`--cache-from` reads it back).
pub const CACHE_KEYS: &str = "berth.cache.v0";

fn cache_keys(c: &ImageConfigBlob) -> Vec<String> {
    let keys: Vec<String> = c
        .other
        .get(CACHE_KEYS)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|k| k.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    if keys.len() == c.history.len() {
        keys
    } else {
        vec![String::new(); c.history.len()]
    }
}

fn short_of(config: &[u8]) -> String {
    hex::encode(Sha256::digest(config))
        .chars()
        .take(12)
        .collect()
}

/// A number for a scratch file no other step of this process uses.
fn next_scratch_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn empty_snapshot(os: &str, arch: &str) -> Snapshot {
    Snapshot {
        config: ImageConfigBlob {
            architecture: arch.to_string(),
            os: os.to_string(),
            variant: None,
            created: None,
            author: None,
            config: Some(ContainerConfig::default()),
            container_config: None,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
            },
            history: Vec::new(),
            other: Default::default(),
        },
        layers: Vec::new(),
    }
}

impl<B: Backend> Shared<B> {
    fn file(&self) -> &str {
        &self.opts.dockerfile
    }

    fn step_err(&self, node: &crate::parser::Node, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.file().to_string(),
            line: node.line,
            instruction: node.original.clone(),
            message: message.into(),
        }
    }

    async fn stage_result(&self, s: usize) -> Result<State, BuildError> {
        let mut rx = self
            .results
            .get(&s)
            .cloned()
            .ok_or_else(|| BuildError::Other(format!("stage {s} is not part of this build")))?;
        let v = rx
            .wait_for(|v| v.is_some())
            .await
            .map_err(|_| BuildError::Other("the build stopped".into()))?;
        v.clone().expect("set")
    }

    fn note_step(&self, cached: bool) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0 += 1;
        if cached {
            c.1 += 1;
        }
    }

    /// `[name N/M] INSTRUCTION`, as BuildKit names a step.
    fn label(&self, s: usize, i: usize, original: &str) -> String {
        let st = &self.plan.stages[s];
        let name = st.name.clone().unwrap_or_else(|| format!("stage-{s}"));
        format!(
            "[{name} {}/{}] {original}",
            i + 1,
            st.instructions.len() + 1
        )
    }

    fn progress(&self, id: usize, name: &str, state: StepState) {
        let _ = self.out.send(Event::Step {
            id,
            name: name.to_string(),
            state,
        });
    }

    /// A step between its events: started, then cached, done or failed.
    async fn tracked<F>(&self, id: usize, name: &str, step: F) -> Result<State, BuildError>
    where
        F: std::future::Future<Output = Result<State, BuildError>>,
    {
        self.progress(id, name, StepState::Started);
        let t = std::time::Instant::now();
        match step.await {
            Ok(st) => {
                let state = if st.cached {
                    StepState::Cached
                } else {
                    StepState::Done {
                        ms: t.elapsed().as_millis() as u64,
                    }
                };
                self.progress(id, name, state);
                Ok(st)
            }
            Err(e) => {
                let why = match &e {
                    BuildError::Step { message, .. } | BuildError::Parse { message, .. } => {
                        message.clone()
                    }
                    BuildError::Other(m) => m.clone(),
                };
                let line = why.lines().next().unwrap_or("").to_string();
                self.progress(id, name, StepState::Failed { error: line });
                Err(e)
            }
        }
    }

    async fn stage(self: &Arc<Self>, s: usize) -> Result<State, BuildError> {
        let stage = &self.plan.stages[s];
        let from = &stage.from;
        let id = self.numbers[&(s, 0)];
        let label = self.label(s, 0, &from.node.original);
        let mut state = self.tracked(id, &label, self.base_state(s)).await?;
        // Triggers of the base image run first, then leave the configuration.
        let triggers = state
            .snap
            .config
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        if !triggers.is_empty() {
            say(
                &self.out,
                format!("# Executing {} build trigger(s)\n", triggers.len()),
            );
        }
        for t in triggers {
            let df = crate::parser::parse(&t)
                .map_err(|e| self.step_err(&from.node, format!("ONBUILD {t}: {e}")))?;
            for node in df.nodes {
                let ins = instruction(node, self.plan.escape)
                    .map_err(|e| self.step_err(&from.node, e.to_string()))?;
                let name = format!("{label} > ONBUILD {}", ins.node.original);
                state = self
                    .tracked(id, &name, self.dispatch(id, s, state, &ins, &from.node))
                    .await?;
            }
        }
        for (i, ins) in stage.instructions.iter().enumerate() {
            let id = self.numbers[&(s, i + 1)];
            say(
                &self.out,
                format!("Step {}/{} : {}\n", id, self.total, ins.node.original),
            );
            let label = self.label(s, i + 1, &ins.node.original);
            state = self
                .tracked(id, &label, self.dispatch(id, s, state, ins, &ins.node))
                .await?;
        }
        Ok(state)
    }

    /// The state FROM gives: another stage's result, scratch, or an image.
    async fn base_state(self: &Arc<Self>, s: usize) -> Result<State, BuildError> {
        let stage = &self.plan.stages[s];
        let from = &stage.from;
        say(
            &self.out,
            format!(
                "Step {}/{} : {}\n",
                self.numbers[&(s, 0)],
                self.total,
                from.node.original
            ),
        );
        let source = self
            .plan
            .base(s, &self.meta)
            .map_err(|m| self.step_err(&from.node, m))?;
        let mut state = match source {
            Source::Stage(j) => {
                let mut st = self.stage_result(j).await?;
                st.args.clear();
                st
            }
            Source::Image(name) if name == "scratch" => {
                let parts: Vec<&str> = self.meta["TARGETPLATFORM"].split('/').collect();
                State {
                    snap: empty_snapshot(parts[0], parts.get(1).copied().unwrap_or(host_arch())),
                    key: digest(&["scratch"]),
                    cached: false,
                    args: BTreeMap::new(),
                }
            }
            Source::Image(name) => {
                let (id, snap) = self
                    .image_named(&name, self.opts.pull)
                    .await
                    .map_err(|m| self.step_err(&from.node, m))?;
                // The platform asked (FROM --platform, or the build's) must be the
                // image's: berth keeps one platform per name.
                let wanted = match &stage.platform {
                    Some(p) => self.expand(&from.node, p, &self.meta)?,
                    None => self.meta["TARGETPLATFORM"].clone(),
                };
                let actual = format!("{}/{}", snap.config.os, snap.config.architecture);
                let base_of = |p: &str| p.split('/').take(2).collect::<Vec<_>>().join("/");
                if !wanted.is_empty() && base_of(&wanted) != actual {
                    return Err(self.step_err(
                        &from.node,
                        format!("image with reference {name} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"),
                    ));
                }
                State {
                    snap,
                    key: digest(&["image", &id]),
                    cached: false,
                    args: BTreeMap::new(),
                }
            }
        };
        {
            let c = state
                .snap
                .config
                .config
                .get_or_insert_with(Default::default);
            let env = c.env.get_or_insert_with(Vec::new);
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                env.insert(0, DEFAULT_PATH.to_string());
            }
        }
        say(
            &self.out,
            format!(
                " ---> {}\n",
                short_of(&serde_json::to_vec(&state.snap.config).unwrap_or_default())
            ),
        );
        self.note_step(false);
        Ok(state)
    }

    /// Variables an instruction sees: the ARGs in scope, then ENV over them.
    fn vars(&self, state: &State) -> Vars {
        let mut v: Vars = state
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        if let Some(env) = state
            .snap
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
        {
            for e in env {
                if let Some((k, val)) = e.split_once('=') {
                    v.insert(k.to_string(), val.to_string());
                }
            }
        }
        v
    }

    fn expand(
        &self,
        node: &crate::parser::Node,
        s: &str,
        vars: &Vars,
    ) -> Result<String, BuildError> {
        shell::expand(s, vars, self.plan.escape).map_err(|e| self.step_err(node, e.to_string()))
    }

    /// ARGs in scope with a value, as `name=value` (the environment RUN adds).
    fn arg_env(&self, state: &State) -> Vec<String> {
        let env_names: Vec<String> = state
            .snap
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .map(|e| {
                e.iter()
                    .filter_map(|x| x.split_once('=').map(|(k, _)| k.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut out: Vec<String> = state
            .args
            .iter()
            .filter(|(k, _)| !env_names.contains(k))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(*p) {
                if !state.args.contains_key(*p) {
                    out.push(format!("{p}={v}"));
                }
            }
        }
        out
    }

    fn cached(&self, key: &str) -> Option<(Vec<u8>, Vec<crate::backend::Layer>)> {
        if self.opts.no_cache {
            return None;
        }
        self.backend.cache_get(key)
    }

    fn use_cached(
        &self,
        mut state: State,
        key: String,
        (config, layers): (Vec<u8>, Vec<crate::backend::Layer>),
    ) -> Result<State, BuildError> {
        let blob: ImageConfigBlob = serde_json::from_slice(&config)
            .map_err(|e| BuildError::Other(format!("a cache record is unreadable: {e}")))?;
        say(
            &self.out,
            format!(" ---> Using cache\n ---> {}\n", short_of(&config)),
        );
        self.note_step(true);
        state.snap = Snapshot {
            config: blob,
            layers,
        };
        state.key = key;
        state.cached = true;
        Ok(state)
    }

    /// A step a `--cache-from` image made with the same key: its history entry
    /// and layer over `cfg` (what the step does to the configuration), recorded
    /// in the cache as if it had run.
    async fn try_import(
        &self,
        state: &State,
        key: &str,
        cfg: &ImageConfigBlob,
    ) -> Option<Result<State, BuildError>> {
        if self.opts.no_cache {
            return None;
        }
        let (entry, layer) = self.imports.get(key)?.clone();
        let mut cfg = cfg.clone();
        cfg.history.push(entry);
        say(&self.out, " ---> Using cache (from --cache-from)\n");
        let r = self
            .finish_step(state.clone(), key.to_string(), cfg, layer)
            .await;
        Some(r.map(|mut s| {
            s.cached = true;
            s
        }))
    }

    /// Records a step's result (config, and the layer it added) in the cache.
    async fn finish_step(
        &self,
        mut state: State,
        key: String,
        mut cfg: ImageConfigBlob,
        layer: Option<crate::backend::Layer>,
    ) -> Result<State, BuildError> {
        if let Some(hit) = self.cached(&key) {
            return self.use_cached(state, key, hit);
        }
        let mut layers = state.snap.layers.clone();
        if let Some(l) = layer {
            cfg.rootfs.diff_ids.push(l.0.clone());
            layers.push(l);
        }
        // The step's key beside its history entry (the parent's keys before it).
        let mut keys = cache_keys(&state.snap.config);
        keys.push(key.clone());
        keys.resize(cfg.history.len(), String::new());
        cfg.other.insert(CACHE_KEYS.into(), serde_json::json!(keys));
        let bytes = serde_json::to_vec(&cfg).expect("config serialises");
        self.backend
            .cache_put(&key, &bytes, &layers)
            .map_err(BuildError::Other)?;
        say(&self.out, format!(" ---> {}\n", short_of(&bytes)));
        self.note_step(false);
        state.snap = Snapshot {
            config: cfg,
            layers,
        };
        state.key = key;
        state.cached = false;
        Ok(state)
    }

    /// The state a `--from` names: a stage of this build, or an image.
    async fn state_named(
        &self,
        stage: usize,
        node: &crate::parser::Node,
        from: &str,
    ) -> Result<Snapshot, BuildError> {
        match self.plan.stage_ref(from, stage) {
            Some(j) => Ok(self.stage_result(j).await?.snap),
            None => {
                if self
                    .plan
                    .stages
                    .iter()
                    .any(|s| s.name.as_deref() == Some(&from.to_lowercase()))
                {
                    return Err(self.step_err(
                        node,
                        format!("stage {from:?} is defined after the stage that uses it"),
                    ));
                }
                self.image_named(from, false)
                    .await
                    .map(|(_, s)| s)
                    .map_err(|m| self.step_err(node, m))
            }
        }
    }

    /// The image `name` names, or what a named context of that name stands
    /// for: another image, or a directory made a one-layer filesystem (its key
    /// the layer's digest, so a changed directory is a changed source).
    async fn image_named(&self, name: &str, pull: bool) -> Result<(String, Snapshot), String> {
        match self.opts.named_contexts.get(name) {
            None => self.backend.image(name, pull, &self.out).await,
            Some(NamedContext::Image(r)) => self.backend.image(r, pull, &self.out).await,
            Some(NamedContext::Dir(dir)) => {
                let tar = self
                    .backend
                    .scratch()
                    .join(format!("named-{}.tar", next_scratch_id()));
                let (d, t) = (dir.clone(), tar.clone());
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    let mut b =
                        tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(&t)?));
                    b.follow_symlinks(false);
                    b.append_dir_all(".", &d)?;
                    b.into_inner()?;
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("reading the named context {name}: {e}"))?;
                let layer = self.backend.add_layer(&tar).await;
                let _ = std::fs::remove_file(&tar);
                let parts: Vec<&str> = self.meta["TARGETPLATFORM"].split('/').collect();
                let mut snap =
                    empty_snapshot(parts[0], parts.get(1).copied().unwrap_or(host_arch()));
                let mut id = digest(&["context", name]);
                if let Some(l) = layer? {
                    id = l.0.clone();
                    snap.config.rootfs.diff_ids.push(l.0.clone());
                    snap.layers.push(l);
                }
                Ok((id, snap))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("5"), None);
    }
}
