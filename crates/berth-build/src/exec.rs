//! The build: the stages the target needs, each started as soon as the stages it
//! reads from are done (independent stages run at the same time), every step
//! looked up in the cache by a key made of its parent's key, its instruction with
//! the variables it sees, and the checksum of the files it copies.

use crate::backend::{say, Backend, Event, Output, RunMount, RunStep, Sharing, Snapshot, View};
use crate::copy::{Request, Selection};
use crate::ignore::Ignore;
use crate::instruction::{instruction, Command, Copy, Health, Kind};
use crate::parser::ParseError;
use crate::rootfs::{clean_abs, lookup_user, Layers};
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
}

#[derive(Debug, Clone)]
struct State {
    snap: Snapshot,
    key: String,
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
        say(&out, format!("[WARNING]: {w}\n"));
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

fn short_of(config: &[u8]) -> String {
    hex::encode(Sha256::digest(config))
        .chars()
        .take(12)
        .collect()
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

    async fn stage(self: &Arc<Self>, s: usize) -> Result<State, BuildError> {
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
                    args: BTreeMap::new(),
                }
            }
            Source::Image(name) => {
                let (id, snap) = self
                    .backend
                    .image(&name, self.opts.pull, &self.out)
                    .await
                    .map_err(|m| self.step_err(&from.node, m))?;
                State {
                    snap,
                    key: digest(&["image", &id]),
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
                state = self.dispatch(s, state, &ins, &from.node).await?;
            }
        }
        for (i, ins) in stage.instructions.iter().enumerate() {
            say(
                &self.out,
                format!(
                    "Step {}/{} : {}\n",
                    self.numbers[&(s, i + 1)],
                    self.total,
                    ins.node.original
                ),
            );
            state = self.dispatch(s, state, ins, &ins.node).await?;
        }
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

    /// A step: from the cache when its key is there, else made.
    async fn dispatch(
        self: &Arc<Self>,
        stage: usize,
        mut state: State,
        ins: &crate::instruction::Instruction,
        node: &crate::parser::Node,
    ) -> Result<State, BuildError> {
        let vars = self.vars(&state);
        let created = self.opts.created.clone();
        let hist = |created_by: String, empty: bool| HistoryEntry {
            created: Some(created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(COMMENT.into()),
            empty_layer: empty,
        };
        // ARG changes only the scope (and what later keys see).
        if let Kind::Arg(args) = &ins.kind {
            for (name, default) in args {
                let value = if let Some(v) = self.opts.build_args.get(name) {
                    self.used_args
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone());
                    Some(v.clone())
                } else if let Some(d) = default {
                    Some(self.expand(node, d, &vars)?)
                } else {
                    self.meta.get(name).cloned()
                };
                state.args.insert(name.clone(), value);
            }
            state.key = digest(&[&state.key, "arg", &format!("{:?}", state.args)]);
            self.note_step(false);
            return Ok(state);
        }
        let mut cfg = state.snap.config.clone();
        let c = cfg.config.get_or_insert_with(Default::default);
        // Metadata-only instructions: the new configuration, keyed by what it sets.
        let meta_change: Option<(String, String)> = match &ins.kind {
            Kind::Env(pairs) => {
                let mut text = Vec::new();
                let mut v = vars.clone();
                for (k, val) in pairs {
                    let k = self.expand(node, k, &v)?;
                    let val = self.expand(node, val, &v)?;
                    v.insert(k.clone(), val.clone());
                    let env = c.env.get_or_insert_with(Vec::new);
                    env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
                    env.push(format!("{k}={val}"));
                    text.push(format!("{k}={val}"));
                }
                let t = format!("ENV {}", text.join(" "));
                Some((t.clone(), t))
            }
            Kind::Label(pairs) => {
                let mut text = Vec::new();
                for (k, val) in pairs {
                    let k = self.expand(node, k, &vars)?;
                    let val = self.expand(node, val, &vars)?;
                    c.labels
                        .get_or_insert_with(Default::default)
                        .insert(k.clone(), val.clone());
                    text.push(format!("{k}={val}"));
                }
                let t = format!("LABEL {}", text.join(" "));
                Some((t.clone(), t))
            }
            Kind::Maintainer(m) => {
                cfg.author = Some(m.clone());
                Some((format!("MAINTAINER {m}"), format!("MAINTAINER {m}")))
            }
            Kind::Cmd(cmd) | Kind::Entrypoint(cmd) => {
                let is_cmd = matches!(ins.kind, Kind::Cmd(_));
                let argv = match cmd {
                    Command::Exec(v) => v.clone(),
                    Command::Shell(s) => {
                        let mut v = c
                            .shell
                            .clone()
                            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                        v.push(s.clone());
                        v
                    }
                };
                let word = if is_cmd { "CMD" } else { "ENTRYPOINT" };
                if is_cmd {
                    c.cmd = Some(argv.clone());
                } else {
                    c.entrypoint = Some(argv.clone());
                    // An ENTRYPOINT resets a CMD the base image set.
                    c.cmd = None;
                }
                let t = format!(
                    "{word} {}",
                    serde_json::to_string(&argv).unwrap_or_default()
                );
                Some((t.clone(), t))
            }
            Kind::Shell(v) => {
                c.shell = Some(v.clone());
                let t = format!("SHELL {}", serde_json::to_string(v).unwrap_or_default());
                Some((t.clone(), t))
            }
            Kind::Expose(ports) => {
                let mut text = Vec::new();
                for p in ports {
                    let p = self.expand(node, p, &vars)?;
                    let p = if p.contains('/') {
                        p.to_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let (port, proto) = p.split_once('/').expect("has a slash");
                    let ok = !port.is_empty()
                        && port.split('-').all(|n| n.parse::<u16>().is_ok())
                        && ["tcp", "udp", "sctp"].contains(&proto);
                    if !ok {
                        return Err(self.step_err(node, format!("invalid containerPort: {port}")));
                    }
                    c.exposed_ports
                        .get_or_insert_with(Default::default)
                        .insert(p.clone(), serde_json::json!({}));
                    text.push(p);
                }
                let t = format!(
                    "EXPOSE map[{}]",
                    text.iter()
                        .map(|p| format!("{p}:{{}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                Some((t.clone(), t))
            }
            Kind::Volume(vols) => {
                let mut text = Vec::new();
                for v in vols {
                    let v = self.expand(node, v, &vars)?;
                    if v.trim().is_empty() {
                        return Err(
                            self.step_err(node, "VOLUME specified can not be an empty string")
                        );
                    }
                    c.volumes
                        .get_or_insert_with(Default::default)
                        .insert(v.clone(), serde_json::json!({}));
                    text.push(v);
                }
                let t = format!("VOLUME [{}]", text.join(" "));
                Some((t.clone(), t))
            }
            Kind::User(u) => {
                let u = self.expand(node, u, &vars)?;
                c.user = u.clone();
                Some((format!("USER {u}"), format!("USER {u}")))
            }
            Kind::StopSignal(sig) => {
                let sig = self.expand(node, sig, &vars)?;
                c.stop_signal = Some(sig.clone());
                Some((format!("STOPSIGNAL {sig}"), format!("STOPSIGNAL {sig}")))
            }
            Kind::OnBuild(t) => {
                c.on_build.get_or_insert_with(Vec::new).push(t.clone());
                Some((format!("ONBUILD {t}"), format!("ONBUILD {t}")))
            }
            Kind::Healthcheck(h) => {
                let v = healthcheck(h).map_err(|m| self.step_err(node, m))?;
                let t = format!("HEALTHCHECK {v}");
                c.healthcheck = Some(v);
                Some((t.clone(), t))
            }
            _ => None,
        };
        if let Some((key_text, created_by)) = meta_change {
            cfg.history.push(hist(created_by, true));
            let key = digest(&[&state.key, &key_text]);
            return self.finish_step(state, key, cfg, None).await;
        }
        match &ins.kind {
            Kind::Workdir(w) => {
                let w = self.expand(node, w, &vars)?;
                let cur = c.working_dir.clone();
                let dir = if w.starts_with('/') {
                    clean_abs(&w)
                } else {
                    clean_abs(&format!("{}/{w}", if cur.is_empty() { "/" } else { &cur }))
                };
                c.working_dir = dir.clone();
                let key = digest(&[&state.key, "WORKDIR", &dir, &c.user]);
                if let Some(hit) = self.cached(&key) {
                    return self.use_cached(state, key, hit);
                }
                // The directory is made (owned by the USER) when the image lacks it.
                let dirs = self.backend.layer_dirs(&state.snap);
                let layers = Layers { dirs: &dirs };
                let user = c.user.clone();
                let layer = if layers.is_dir(&dir) {
                    None
                } else {
                    let owner = if user.is_empty() {
                        (0, 0)
                    } else {
                        lookup_user(&layers, &user).unwrap_or((0, 0))
                    };
                    let mut b = tar::Builder::new(Vec::new());
                    let mut path = String::new();
                    for part in dir.split('/').filter(|p| !p.is_empty()) {
                        path.push('/');
                        path.push_str(part);
                        if layers.is_dir(&path) {
                            continue;
                        }
                        let mut h = tar::Header::new_gnu();
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_mode(0o755);
                        h.set_uid(owner.0 as u64);
                        h.set_gid(owner.1 as u64);
                        h.set_mtime(0);
                        h.set_size(0);
                        b.append_data(&mut h, format!("{}/", &path[1..]), std::io::empty())
                            .map_err(|e| self.step_err(node, e.to_string()))?;
                    }
                    let tar = b
                        .into_inner()
                        .map_err(|e| self.step_err(node, e.to_string()))?;
                    let path = self.backend.scratch().join(format!("workdir-{key}.tar"));
                    std::fs::write(&path, tar).map_err(|e| self.step_err(node, e.to_string()))?;
                    let l = self
                        .backend
                        .add_layer(&path)
                        .await
                        .map_err(|m| self.step_err(node, m));
                    let _ = std::fs::remove_file(&path);
                    l?
                };
                cfg.history
                    .push(hist(format!("WORKDIR {dir}"), layer.is_none()));
                self.finish_step(state, key, cfg, layer).await
            }
            Kind::Run {
                cmd,
                mounts,
                network,
                security,
                heredocs,
            } => {
                self.run(
                    stage, state, cfg, node, cmd, mounts, network, security, heredocs, &vars,
                )
                .await
            }
            Kind::Copy(copy) => self.copy(stage, state, cfg, node, copy, &vars).await,
            _ => unreachable!("every other instruction changes only the configuration"),
        }
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
        Ok(state)
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
                self.backend
                    .image(from, false, &self.out)
                    .await
                    .map(|(_, s)| s)
                    .map_err(|m| self.step_err(node, m))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        self: &Arc<Self>,
        stage: usize,
        state: State,
        mut cfg: ImageConfigBlob,
        node: &crate::parser::Node,
        cmd: &Command,
        mounts: &[String],
        network: &Option<String>,
        security: &Option<String>,
        heredocs: &[crate::parser::Heredoc],
        vars: &Vars,
    ) -> Result<State, BuildError> {
        let c = cfg.config.get_or_insert_with(Default::default);
        let shell = c
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        let args: Vec<String> = match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut argv = shell.clone();
                let marker = heredocs.first().map(|h| h.name.clone());
                let only_heredoc = heredocs.len() == 1
                    && marker.as_ref().is_some_and(|m| {
                        let t = s.trim();
                        t == format!("<<{m}")
                            || t == format!("<<-{m}")
                            || t == format!("<<\"{m}\"")
                            || t == format!("<<'{m}'")
                    });
                if only_heredoc {
                    argv.push(heredocs[0].content.clone());
                } else if heredocs.is_empty() {
                    argv.push(s.clone());
                } else {
                    let mut script = s.clone();
                    for h in heredocs {
                        script.push('\n');
                        script.push_str(&h.content);
                        script.push_str(&h.name);
                    }
                    argv.push(script);
                }
                argv
            }
        };
        let network = match network.as_deref() {
            None => self.opts.network.clone(),
            Some(n @ ("default" | "none" | "host")) => {
                if n == "default" {
                    self.opts.network.clone()
                } else {
                    n.to_string()
                }
            }
            Some(other) => {
                return Err(self.step_err(
                    node,
                    format!("unsupported network mode {other:?} (default, none or host)"),
                ))
            }
        };
        let insecure = match security.as_deref() {
            None | Some("sandbox") => false,
            Some("insecure") => true,
            Some(other) => {
                return Err(self.step_err(node, format!("unsupported security mode {other:?}")))
            }
        };
        let mut run_mounts = Vec::new();
        let mut mount_key = Vec::new();
        let mut views = Vec::new();
        for m in mounts {
            let m = self.expand(node, m, vars)?;
            mount_key.push(m.clone());
            if let Some(rm) = self.mount(stage, node, &m, c, &mut views).await? {
                run_mounts.push(rm);
            }
        }
        let arg_env = self.arg_env(&state);
        {
            let mut used = self.used_args.lock().unwrap_or_else(|p| p.into_inner());
            for e in &arg_env {
                if let Some((k, _)) = e.split_once('=') {
                    used.insert(k.to_string());
                }
            }
        }
        let visible_args: Vec<&String> = arg_env
            .iter()
            .filter(|e| !PROXY_ARGS.contains(&e.split_once('=').map_or(e.as_str(), |(k, _)| k)))
            .collect();
        let shown = match &args {
            a if matches!(cmd, Command::Exec(_)) => serde_json::to_string(a).unwrap_or_default(),
            a => a.join(" "),
        };
        let created_by = if visible_args.is_empty() {
            format!("RUN {shown} # buildkit")
        } else {
            format!(
                "RUN |{} {} {shown} # buildkit",
                visible_args.len(),
                visible_args
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        let key = digest(&[
            &state.key,
            "RUN",
            &serde_json::to_string(&args).unwrap_or_default(),
            &arg_env.join("\n"),
            &mount_key.join("\n"),
            &network,
            &insecure.to_string(),
        ]);
        if let Some(hit) = self.cached(&key) {
            return self.use_cached(state, key, hit);
        }
        let mut env = c.env.clone().unwrap_or_default();
        env.extend(arg_env);
        let step = RunStep {
            args: args.clone(),
            env,
            user: c.user.clone(),
            workdir: if c.working_dir.is_empty() {
                "/".into()
            } else {
                c.working_dir.clone()
            },
            network,
            mounts: run_mounts,
            insecure,
        };
        let result = self
            .backend
            .run(&state.snap, &step, &self.out)
            .await
            .map_err(|m| self.step_err(node, m))?;
        drop(views);
        if result.exit_code != 0 {
            let shown = serde_json::to_string(&args).unwrap_or_default();
            let shown = if matches!(cmd, Command::Shell(_)) {
                args.join(" ")
            } else {
                shown
            };
            let mut msg = format!(
                "process \"{}\" did not complete successfully: exit code: {}",
                shown.replace('"', "\\\""),
                result.exit_code
            );
            if !result.tail.is_empty() {
                msg.push_str("\nlast output:\n");
                msg.push_str(&result.tail.join("\n"));
            }
            return Err(self.step_err(node, msg));
        }
        cfg.history.push(HistoryEntry {
            created: Some(self.opts.created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(COMMENT.into()),
            empty_layer: result.layer.is_none(),
        });
        self.finish_step(state, key, cfg, result.layer).await
    }

    /// One `--mount` of a RUN, resolved.
    async fn mount(
        &self,
        stage: usize,
        node: &crate::parser::Node,
        spec: &str,
        c: &ContainerConfig,
        views: &mut Vec<B::View>,
    ) -> Result<Option<RunMount>, BuildError> {
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, "true"));
            kv.insert(
                k.trim().to_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
        let kind = kv.remove("type").unwrap_or_else(|| "bind".into());
        let target = kv
            .remove("target")
            .or_else(|| kv.remove("dst"))
            .or_else(|| kv.remove("destination"));
        let abs = |t: &str| {
            if t.starts_with('/') {
                clean_abs(t)
            } else {
                clean_abs(&format!(
                    "{}/{t}",
                    if c.working_dir.is_empty() {
                        "/"
                    } else {
                        &c.working_dir
                    }
                ))
            }
        };
        let flag = |kv: &BTreeMap<String, String>, names: &[&str]| {
            names
                .iter()
                .any(|n| kv.get(*n).is_some_and(|v| v != "false"))
        };
        let readonly = flag(&kv, &["ro", "readonly"]);
        let rw = flag(&kv, &["rw", "readwrite"]);
        let num = |kv: &BTreeMap<String, String>,
                   k: &str,
                   radix: u32,
                   default: u32|
         -> Result<u32, BuildError> {
            match kv.get(k) {
                None => Ok(default),
                Some(v) => u32::from_str_radix(v, radix)
                    .map_err(|_| self.step_err(node, format!("invalid {k} {v:?} in --mount"))),
            }
        };
        match kind.as_str() {
            "bind" => {
                let target = target
                    .ok_or_else(|| self.step_err(node, "--mount type=bind requires a target"))?;
                let source = kv
                    .get("source")
                    .or_else(|| kv.get("src"))
                    .cloned()
                    .unwrap_or_else(|| "/".into());
                let root = match kv.get("from") {
                    None => self.context.dir.clone(),
                    Some(f) => {
                        let snap = self.state_named(stage, node, f).await?;
                        let v = self
                            .backend
                            .view(&snap)
                            .map_err(|m| self.step_err(node, m))?;
                        let p = v.path().to_path_buf();
                        views.push(v);
                        p
                    }
                };
                let src = crate::rootfs::scoped(&root, &source, true);
                if !src.exists() {
                    return Err(self.step_err(
                        node,
                        format!(
                            "failed to compute cache key: {:?}: not found",
                            clean_abs(&source)
                        ),
                    ));
                }
                Ok(Some(RunMount::Bind {
                    source: src,
                    target: abs(&target),
                    readonly: !rw,
                }))
            }
            "cache" => {
                let target = target
                    .ok_or_else(|| self.step_err(node, "--mount type=cache requires a target"))?;
                let target = abs(&target);
                let id = kv.get("id").cloned().unwrap_or_else(|| target.clone());
                let sharing = match kv.get("sharing").map(String::as_str) {
                    None | Some("shared") => Sharing::Shared,
                    Some("private") => Sharing::Private,
                    Some("locked") => Sharing::Locked,
                    Some(o) => {
                        return Err(self.step_err(node, format!("unsupported sharing value {o:?}")))
                    }
                };
                let seed = match kv.get("from") {
                    None => None,
                    Some(f) => {
                        let snap = self.state_named(stage, node, f).await?;
                        let v = self
                            .backend
                            .view(&snap)
                            .map_err(|m| self.step_err(node, m))?;
                        let source = kv
                            .get("source")
                            .or_else(|| kv.get("src"))
                            .cloned()
                            .unwrap_or_else(|| "/".into());
                        let p = crate::rootfs::scoped(v.path(), &source, true);
                        views.push(v);
                        Some(p)
                    }
                };
                Ok(Some(RunMount::Cache {
                    id,
                    target,
                    sharing,
                    uid: num(&kv, "uid", 10, 0)?,
                    gid: num(&kv, "gid", 10, 0)?,
                    mode: num(&kv, "mode", 8, 0o755)?,
                    seed,
                    readonly,
                }))
            }
            "tmpfs" => {
                let target = target
                    .ok_or_else(|| self.step_err(node, "--mount type=tmpfs requires a target"))?;
                let size = match kv.get("size") {
                    None => None,
                    Some(s) => Some(parse_size(s).ok_or_else(|| {
                        self.step_err(node, format!("invalid size {s:?} in --mount"))
                    })?),
                };
                Ok(Some(RunMount::Tmpfs {
                    target: abs(&target),
                    size,
                }))
            }
            "secret" | "ssh" => {
                // No session gives secrets or agents to this build (the BuildKit
                // API does): a required one fails the step, an optional one is
                // absent, as BuildKit does without a provider.
                let required = flag(&kv, &["required"]);
                let id = kv.get("id").cloned().unwrap_or_else(|| {
                    if kind == "ssh" {
                        "default".into()
                    } else {
                        target
                            .as_deref()
                            .and_then(|t| t.rsplit('/').next())
                            .unwrap_or("")
                            .to_string()
                    }
                });
                if required {
                    return Err(self.step_err(
                        node,
                        if kind == "ssh" {
                            format!("no SSH key {id:?} forwarded from the client")
                        } else {
                            format!("secret {id}: not found")
                        },
                    ));
                }
                Ok(None)
            }
            other => Err(self.step_err(node, format!("unsupported mount type {other:?}"))),
        }
    }

    async fn copy(
        self: &Arc<Self>,
        stage: usize,
        state: State,
        mut cfg: ImageConfigBlob,
        node: &crate::parser::Node,
        copy: &Copy,
        vars: &Vars,
    ) -> Result<State, BuildError> {
        let word = if copy.add { "ADD" } else { "COPY" };
        let c = cfg.config.get_or_insert_with(Default::default);
        let mut srcs = Vec::new();
        let heredoc_names: Vec<&str> = copy.heredocs.iter().map(|h| h.name.as_str()).collect();
        let mut inline = Vec::new();
        for s in &copy.srcs {
            let plain = s
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(['"', '\'']);
            if s.starts_with("<<") && heredoc_names.contains(&plain) {
                let h = copy
                    .heredocs
                    .iter()
                    .find(|h| h.name == plain)
                    .expect("named");
                let content = if h.expand {
                    self.expand(node, &h.content, vars)?
                } else {
                    h.content.clone()
                };
                inline.push((h.name.clone(), content.into_bytes()));
                continue;
            }
            let e = self.expand(node, s, vars)?;
            if copy.add
                && (e.starts_with("http://") || e.starts_with("https://") || e.starts_with("git@"))
            {
                return Err(self.step_err(
                    node,
                    format!("ADD from a URL ({e}) is not supported by berth's builder yet"),
                ));
            }
            srcs.push(e);
        }
        let dest_raw = self.expand(node, &copy.dest, vars)?;
        let wd = if c.working_dir.is_empty() {
            "/".to_string()
        } else {
            c.working_dir.clone()
        };
        let mut dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{dest_raw}", wd.trim_end_matches('/'))
        };
        if (dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/."))
            && !dest.ends_with('/')
        {
            dest.push('/');
        }
        let dirs = self.backend.layer_dirs(&state.snap);
        let layers = Layers { dirs: &dirs };
        // The destination's symlinked parents are followed inside the image.
        let dest_resolved = {
            let trailing = dest.ends_with('/');
            let mut d = layers.resolve(&dest, true);
            if trailing && !d.ends_with('/') {
                d.push('/');
            }
            d
        };
        let owner = match &copy.chown {
            None => None,
            Some(o) => {
                let o = self.expand(node, o, vars)?;
                Some(lookup_user(&layers, &o).map_err(|m| self.step_err(node, m))?)
            }
        };
        let chmod = match &copy.chmod {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        self.step_err(
                            node,
                            format!(
                                "invalid chmod parameter {m:?}: only octal modes are supported"
                            ),
                        )
                    })?,
            ),
        };
        let exclude = Ignore::parse(&copy.exclude.join("\n"))
            .map_err(|e| self.step_err(node, e.to_string()))?;
        let mut view = None;
        let (root, ignore) = match &copy.from {
            None => (self.context.dir.clone(), Some(&self.context.ignore)),
            Some(f) => {
                let f = self.expand(node, f, vars)?;
                let snap = self.state_named(stage, node, &f).await?;
                let v = self
                    .backend
                    .view(&snap)
                    .map_err(|m| self.step_err(node, m))?;
                let p = v.path().to_path_buf();
                view = Some(v);
                (p, None)
            }
        };
        let req = Request {
            instruction: word,
            root: &root,
            srcs: &srcs,
            inline: &inline,
            dest: &dest_resolved,
            dest_is_dir: layers.is_dir(&dest_resolved),
            owner,
            chmod,
            parents: copy.parents,
            exclude: &exclude,
            ignore,
            unpack: copy.add && copy.unpack != Some(false),
        };
        let sel = tokio::task::block_in_place(|| Selection::select(&req))
            .map_err(|e| self.step_err(node, e.to_string()))?;
        let shown = copy.srcs.join(" ");
        let created_by = format!("{word} {shown} {dest_raw} # buildkit");
        let key = digest(&[
            &state.key,
            word,
            &sel.checksum,
            &dest_resolved,
            &format!("{owner:?}{chmod:?}{}", copy.parents),
        ]);
        if let Some(hit) = self.cached(&key) {
            return self.use_cached(state, key, hit);
        }
        let path = self.backend.scratch().join(format!("copy-{key}.tar"));
        let file = std::fs::File::create(&path).map_err(|e| self.step_err(node, e.to_string()))?;
        let w = std::io::BufWriter::new(file);
        tokio::task::block_in_place(|| sel.write_tar(&layers, w))
            .map_err(|e| self.step_err(node, e.to_string()))?;
        drop(view);
        let layer = self
            .backend
            .add_layer(&path)
            .await
            .map_err(|m| self.step_err(node, m));
        let _ = std::fs::remove_file(&path);
        let layer = layer?;
        cfg.history.push(HistoryEntry {
            created: Some(self.opts.created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(COMMENT.into()),
            empty_layer: layer.is_none(),
        });
        self.finish_step(state, key, cfg, layer).await
    }
}

/// A size such as `64m` (tmpfs mounts).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_lowercase();
    let (num, mul) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        'b' => (&s[..s.len() - 1], 1),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>().ok().map(|n| n * mul)
}

/// Go duration text (`30s`, `1m30s`, `500ms`) in nanoseconds.
pub fn duration_ns(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut num = String::new();
    let mut unit = String::new();
    let mut flush = |num: &mut String, unit: &mut String| -> Option<()> {
        if num.is_empty() {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        let m = match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * m;
        num.clear();
        unit.clear();
        Some(())
    };
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            if !unit.is_empty() {
                flush(&mut num, &mut unit)?;
            }
            num.push(ch);
        } else {
            unit.push(ch);
        }
    }
    flush(&mut num, &mut unit)?;
    Some(total as i64)
}

fn healthcheck(h: &Health) -> Result<serde_json::Value, String> {
    let test = match &h.test {
        None => vec!["NONE".to_string()],
        Some(Command::Exec(v)) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
        Some(Command::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let mut v = serde_json::json!({ "Test": test });
    for (k, val) in [
        ("Interval", &h.interval),
        ("Timeout", &h.timeout),
        ("StartPeriod", &h.start_period),
        ("StartInterval", &h.start_interval),
    ] {
        if let Some(d) = val {
            let ns =
                duration_ns(d).ok_or_else(|| format!("invalid duration {d:?} for HEALTHCHECK"))?;
            v[k] = serde_json::json!(ns);
        }
    }
    if let Some(r) = &h.retries {
        let n: i64 = r
            .parse()
            .map_err(|_| format!("invalid retries {r:?} for HEALTHCHECK"))?;
        v["Retries"] = serde_json::json!(n);
    }
    Ok(v)
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
