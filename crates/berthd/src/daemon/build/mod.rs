//! The build service: `POST /build`. It receives the context, hands the
//! Dockerfile to `berth-build` and gives it a [`backend::Steps`] through which
//! steps run as containers of berth's own start path, layers and cache records go
//! into the store and the result becomes an image. Build caches (`RUN
//! --mount=type=cache`) live under `<data-root>/build/cache`.

mod backend;
mod context;
pub mod contexts;
pub mod control;
mod remote;
mod request;
pub mod sessions;
mod trace;

pub use request::{BuildRequest, SessionOutput};

use crate::daemon::archive::Archive;
use crate::daemon::container::Containers;
use crate::daemon::image::service::Images;
use berth_build::backend::Event;
use berth_image::Store;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One rule of dockerd's `builder.gc.policy`.
#[derive(Debug, Clone, PartialEq)]
pub struct GcRule {
    pub all: bool,
    pub keep_storage: i64,
    pub until_secs: Option<i64>,
}

pub struct Builds {
    parts: Arc<backend::Parts>,
    sessions: Arc<sessions::Sessions>,
    contexts: Arc<contexts::Contexts>,
    /// Builds of the control API (`POST /grpc`).
    control: control::Control,
    /// Builds in progress by their `buildid`, for `/build/cancel`.
    running: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Tar contexts a BuildKit client uploads beside its build, by build id.
    uploads: Mutex<HashMap<String, Upload>>,
    upload_added: tokio::sync::Notify,
}

/// A context's tar, and who waits until the build has read it.
type Upload = (
    Box<dyn std::io::Read + Send>,
    tokio::sync::oneshot::Sender<()>,
);

impl Builds {
    pub fn new(
        store: Arc<Store>,
        containers: Arc<Containers>,
        archive: Arc<Archive>,
        images: Arc<Images>,
        networks: Arc<crate::daemon::network::Networks>,
        data_root: &std::path::Path,
    ) -> Builds {
        let dir = data_root.join("build");
        // Scratch space of builds a crash interrupted.
        let _ = std::fs::remove_dir_all(dir.join("tmp"));
        let sessions: Arc<sessions::Sessions> = Default::default();
        let parts = Arc::new(backend::Parts {
            store,
            containers,
            archive,
            images,
            networks,
            dir: dir.clone(),
            cache_locks: Mutex::new(HashMap::new()),
            temp_images: Mutex::new(HashMap::new()),
            gc_wake: tokio::sync::Notify::new(),
        });
        Builds {
            control: control::Control::new(parts.clone(), sessions.clone()),
            sessions,
            contexts: Arc::new(contexts::Contexts::new(dir.join("contexts"))),
            parts,
            running: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            upload_added: tokio::sync::Notify::new(),
        }
    }

    /// A BuildKit client's upload of the tar context of build `id` (its
    /// `buildid=upload-request:ID` request): held until that build has read it,
    /// or for a minute if no build of that id comes.
    pub async fn upload<R: std::io::Read + Send + 'static>(
        &self,
        id: &str,
        body: R,
    ) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (Box::new(body), tx));
        self.upload_added.notify_waiters();
        match tokio::time::timeout(std::time::Duration::from_secs(60), rx).await {
            Ok(_) => Ok(()),
            Err(_) => {
                self.uploads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                Err(format!("no build {id} took the uploaded context"))
            }
        }
    }

    /// The upload of build `id`, waiting a little for it to start.
    async fn take_upload(&self, id: &str) -> Option<Upload> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let added = self.upload_added.notified();
            if let Some(u) = self
                .uploads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id)
            {
                return Some(u);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }

    /// The control API's builds; `runner` runs their Dockerfile builds.
    pub fn control(self: &Arc<Self>) -> (&control::Control, control::Runner) {
        let me = self.clone();
        let runner: control::Runner = Arc::new(move |req, out| {
            let me = me.clone();
            Box::pin(async move { me.run(req, std::io::empty(), out).await })
        });
        (&self.control, runner)
    }

    /// Starts a build over the context `body` (a tar, possibly compressed);
    /// returns Docker's JSON stream.
    pub fn build<R: std::io::Read + Send + 'static>(
        self: &Arc<Self>,
        req: BuildRequest,
        body: R,
    ) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        let build_id = req.build_id.clone();
        let cancel = Arc::new(tokio::sync::Notify::new());
        if let Some(id) = &build_id {
            self.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), cancel.clone());
        }
        tokio::spawn(async move {
            let (etx, mut erx) = mpsc::unbounded_channel::<Event>();
            let quiet = req.quiet;
            let progress = req.progress;
            let buildkit = req.buildkit;
            let forward = {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut trace = trace::Trace::default();
                    while let Some(e) = erx.recv().await {
                        let line = match e {
                            // A BuildKit client reads BuildKit's status.
                            e if buildkit => match trace.line(e) {
                                Some(l) => l,
                                None => continue,
                            },
                            Event::Stream(s) if !quiet => serde_json::json!({ "stream": s }),
                            Event::Warning(w) if !quiet => {
                                serde_json::json!({ "stream": format!("[WARNING]: {w}\n") })
                            }
                            Event::Stream(_) | Event::Warning(_) => continue,
                            Event::Aux(v) => serde_json::json!({ "aux": v }),
                            // berth's progress view: steps and their output.
                            Event::Step { id, name, state } if progress => serde_json::json!({
                                "aux": { "berth.step": { "id": id, "name": name, "status": state } }
                            }),
                            Event::Log { id, text } if progress => serde_json::json!({
                                "aux": { "berth.step": { "id": id, "log": text } }
                            }),
                            Event::Step { .. } => continue,
                            Event::Log { text, .. } if !quiet => {
                                serde_json::json!({ "stream": text })
                            }
                            Event::Log { .. } => continue,
                        };
                        let mut b = serde_json::to_vec(&line).expect("serialises");
                        b.push(b'\n');
                        if tx.send(Bytes::from(b)).await.is_err() {
                            break;
                        }
                    }
                })
            };
            // A cancel, or the client leaving, stops the build: its running step's
            // container and scratch go with the dropped future's guards.
            let result = tokio::select! {
                r = me.run(req, body, etx) => r,
                _ = cancel.notified() => Err("context canceled".to_string()),
                _ = tx.closed() => Err("the client went away".to_string()),
            };
            if let Some(id) = &build_id {
                me.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
            }
            me.parts.gc_wake.notify_one();
            let _ = forward.await;
            let line = match result {
                Ok(id) if quiet => serde_json::json!({ "stream": format!("{id}\n") }),
                Ok(_) => return,
                Err(e) => {
                    tracing::info!(error = %e, "build failed");
                    serde_json::json!({
                        "errorDetail": { "message": e },
                        "error": e,
                    })
                }
            };
            let mut b = serde_json::to_vec(&line).expect("serialises");
            b.push(b'\n');
            let _ = tx.send(Bytes::from(b)).await;
        });
        rx
    }

    /// `POST /build/contexts/{key}`: what of a kept context the client must send.
    pub fn sync_context(
        &self,
        key: &str,
        entries: Vec<contexts::Entry>,
    ) -> Result<(Vec<String>, String), contexts::Error> {
        self.contexts.sync(key, entries)
    }

    /// Claims the list a kept context's build brings (a conflict if stale).
    pub fn claim_context(
        &self,
        key: &str,
        generation: &str,
    ) -> Result<contexts::Claim, contexts::Error> {
        self.contexts.claim(key, generation)
    }

    /// `POST /session`: serves a client's session on its upgraded connection
    /// until the connection ends.
    pub async fn serve_session<IO>(
        &self,
        id: String,
        methods: Vec<String>,
        shared_key: String,
        io: IO,
    ) where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        match berth_buildkit::grpc::Channel::connect(io).await {
            Ok((channel, conn)) => {
                self.sessions.add(
                    &id,
                    sessions::Session {
                        channel,
                        methods,
                        shared_key,
                    },
                );
                let _ = conn.await;
                self.sessions.remove(&id);
            }
            Err(e) => tracing::warn!(session = %id, error = %e, "a session's connection failed"),
        }
    }

    /// `POST /build/cancel?id=`: stops the build (its containers are removed).
    pub fn cancel(&self, id: &str) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }

    async fn run<R: std::io::Read + Send + 'static>(
        self: &Arc<Self>,
        req: BuildRequest,
        body: R,
        out: berth_build::backend::Output,
    ) -> Result<String, String> {
        let scratch = self
            .parts
            .dir
            .join("tmp")
            .join(format!("{:016x}", rand::random::<u64>()));
        let guard = context::Scratch::new(scratch.clone()).map_err(|e| e.to_string())?;
        let ctx_dir = scratch.join("context");
        let dockerfile_name = if req.dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            req.dockerfile.clone()
        };
        let mut _kept = None;
        let t0 = std::time::Instant::now();
        let mut session = None;
        // A BuildKit client's tar context (`docker build - < ctx.tar`) comes as the
        // request's body, as the classic builder's does.
        let remote = req.remote.as_deref().filter(|r| *r != "upload-request");
        let ctx = match (remote, &req.kept_context) {
            (Some("client-session"), _) => {
                let id = req
                    .session
                    .clone()
                    .ok_or("a build from the client's session needs its session id")?;
                let s = self
                    .sessions
                    .get(&id)
                    .await
                    .ok_or_else(|| format!("no active session for {id}: context canceled"))?;
                // The context lands in the copy kept under the session's shared
                // key when no other build holds it: only what changed comes.
                let dir = match self.contexts.session_dir(&s.shared_key) {
                    Some((dir, guard)) => {
                        _kept = Some(guard);
                        dir
                    }
                    None => ctx_dir.clone(),
                };
                let reads = {
                    let (store, target, args) = (
                        self.parts.store.clone(),
                        req.target.clone(),
                        req.build_args.clone(),
                    );
                    move |dockerfile: &str| {
                        let target = (!target.is_empty()).then_some(target.as_str());
                        let (paths, images) =
                            berth_build::stages::context_paths(dockerfile, target, &args)?;
                        // An image's ONBUILD triggers may read any of it; so may one
                        // not pulled yet.
                        let quiet = images.iter().all(|i| {
                            store.resolve(i).is_ok_and(|img| {
                                serde_json::from_slice::<serde_json::Value>(&img.config_bytes)
                                    .is_ok_and(|c| {
                                        c["config"]["OnBuild"]
                                            .as_array()
                                            .is_none_or(|a| a.is_empty())
                                    })
                            })
                        });
                        quiet.then_some(paths)
                    }
                };
                let ctx =
                    context::from_session(&s, &scratch, &dir, &dockerfile_name, &reads).await?;
                session = Some(s);
                ctx
            }
            (None, Some((key, claim))) => {
                let (dir, guard) = self
                    .contexts
                    .update(key, claim.clone(), body)
                    .await
                    .map_err(|e| e.to_string())?;
                _kept = Some(guard);
                context::read(&dir, &dockerfile_name)?
            }
            (None, None) => {
                let ctx_dir = ctx_dir.clone();
                let name = dockerfile_name.clone();
                let upload =
                    match req.remote.as_deref() {
                        Some(_) => {
                            let id = req.build_id.as_deref().unwrap_or("");
                            Some(self.take_upload(id).await.ok_or_else(|| {
                                format!("no context was uploaded for build {id:?}")
                            })?)
                        }
                        None => None,
                    };
                tokio::task::spawn_blocking(move || match upload {
                    Some((tar, done)) => {
                        let r = context::receive(tar, &ctx_dir, &name);
                        let _ = done.send(());
                        r
                    }
                    None => context::receive(body, &ctx_dir, &name),
                })
                .await
                .map_err(|e| e.to_string())??
            }
            (Some(url), _) if remote::is_git(url) => {
                let dir = remote::clone(url, &ctx_dir, false).await?;
                context::read(&dir, &dockerfile_name)?
            }
            (Some(url), _) => {
                // A tarball (its context), or a plain file (the Dockerfile).
                let file = scratch.join("remote");
                remote::download(url, &file).await?;
                let ctx_dir = ctx_dir.clone();
                let name = dockerfile_name.clone();
                tokio::task::spawn_blocking(move || context::receive_file(&file, &ctx_dir, &name))
                    .await
                    .map_err(|e| e.to_string())??
            }
        };
        // berth build's session: secrets and SSH agents, the context came as a tar.
        if let (None, Some(id)) = (&session, &req.session) {
            session = Some(
                self.sessions
                    .get(id)
                    .await
                    .ok_or_else(|| format!("no active session for {id}: context canceled"))?,
            );
        }
        let mut named_contexts = std::collections::BTreeMap::new();
        for (i, (name, v)) in req.named_contexts.iter().enumerate() {
            use berth_build::exec::NamedContext;
            let c = if let Some(r) = v.strip_prefix("docker-image://") {
                NamedContext::Image(r.to_string())
            } else if let Some(dir_name) = v.strip_prefix("local:") {
                let s = session
                    .as_ref()
                    .ok_or_else(|| format!("named context {name}: no session to read {v} from"))?;
                let dir = scratch.join(format!("named-{i}"));
                context::from_session_dir(s, dir_name, &dir).await?;
                NamedContext::Dir(dir)
            } else {
                return Err(format!("named context {name}: {v:?} is not supported"));
            };
            named_contexts.insert(name.clone(), c);
        }
        let backend = Arc::new(backend::Steps::new(
            self.parts.clone(),
            &req,
            scratch.clone(),
            session,
        ));
        let opts = berth_build::exec::Options {
            dockerfile: dockerfile_name,
            target: (!req.target.is_empty()).then(|| req.target.clone()),
            build_args: req.build_args.clone(),
            labels: req.labels.clone(),
            no_cache: req.no_cache,
            pull: req.pull,
            network: if req.network_mode.is_empty() {
                "default".into()
            } else {
                req.network_mode.clone()
            },
            platform: req.platform.clone(),
            tags: req.tags.clone(),
            created: crate::daemon::time::now_rfc3339(),
            cache_from: req.cache_from.clone(),
            named_contexts,
        };
        let received = t0.elapsed();
        let exporter = backend.clone();
        let built = berth_build::exec::build(backend, &ctx.dockerfile, ctx.context, opts, out)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(o) = req.session_output {
            let image = self
                .parts
                .store
                .resolve(&built.id)
                .map_err(|e| e.to_string())?;
            match o {
                SessionOutput::Tar => exporter.send_tar(&image.layers).await?,
                SessionOutput::Local => exporter.send_dir(&image.layers).await?,
            }
        }
        let done = t0.elapsed();
        // The scratch directory goes after the answer, not before it.
        tokio::task::spawn_blocking(move || drop(guard));
        for t in &req.tags {
            self.parts.images.emit("tag", t);
        }
        tracing::info!(
            image = %built.id,
            steps = built.steps,
            cached = built.cached,
            context_ms = received.as_millis() as u64,
            total_ms = done.as_millis() as u64,
            "built"
        );
        Ok(built.id)
    }

    /// dockerd's `builder.gc`: after each build, and every ten minutes, the
    /// rules run in order as `docker builder prune` would (`--all`,
    /// `--keep-storage`, `--filter until=`).
    pub fn start_gc(self: &Arc<Self>, rules: Vec<GcRule>) {
        if rules.is_empty() {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(b) = me.upgrade() else { return };
                let woken = b.parts.clone();
                drop(b);
                tokio::select! {
                    _ = woken.gc_wake.notified() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
                }
                let Some(b) = me.upgrade() else { return };
                let rules = rules.clone();
                let r = tokio::task::spawn_blocking(move || {
                    let mut freed = 0;
                    for rule in &rules {
                        freed += b.prune(rule.all, rule.keep_storage, rule.until_secs)?.1;
                    }
                    Ok::<i64, berth_image::StoreError>(freed)
                })
                .await;
                match r {
                    Ok(Ok(freed)) if freed > 0 => {
                        tracing::info!(freed, "builder garbage collection")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "builder garbage collection"),
                    Err(e) => tracing::warn!(error = %e, "builder garbage collection"),
                }
            }
        });
    }

    /// The build cache's records (`docker buildx du`).
    pub fn cache_records(
        &self,
    ) -> Result<Vec<berth_image::buildcache::CacheRecord>, berth_image::StoreError> {
        self.parts.store.cache_records()
    }

    /// `docker builder prune` / `POST /build/prune`: step records (oldest used
    /// first, until `keep_storage` bytes are left), then the cache mounts no
    /// running step holds; with `until`, only what was not used for that long.
    /// Between builds no record is in use, so `--all` (every unused record rather
    /// than the dangling ones) changes nothing here.
    pub fn prune(
        &self,
        _all: bool,
        keep_storage: i64,
        until_secs: Option<i64>,
    ) -> Result<(Vec<String>, i64), berth_image::StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let old_enough = |last_used: i64| until_secs.is_none_or(|u| now - last_used >= u);
        let mut records = self.parts.store.cache_records()?;
        records.sort_by_key(|r| r.last_used);
        let total: i64 = records.iter().map(|r| r.size).sum();
        let budget = std::cell::Cell::new(total - keep_storage.max(0));
        let (mut keys, mut freed) = self.parts.store.cache_prune(&|r| {
            if !old_enough(r.last_used) {
                return false;
            }
            if keep_storage > 0 {
                if budget.get() <= 0 {
                    return false;
                }
                budget.set(budget.get() - r.size);
            }
            true
        })?;
        if until_secs.is_none() && keep_storage <= 0 {
            let (k, f) = self.contexts.prune();
            keys.extend(k);
            freed += f;
        }
        let mounts = self.parts.dir.join("cache");
        let locks = self
            .parts
            .cache_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let busy = locks.values().any(|l| l.try_lock().is_err());
        for e in std::fs::read_dir(&mounts).into_iter().flatten().flatten() {
            let used = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            if busy || !old_enough(used) || (keep_storage > 0 && budget.get() <= 0) {
                continue;
            }
            let size = crate::daemon::paths::dir_size(&e.path()) as i64;
            if std::fs::remove_dir_all(e.path()).is_ok() {
                budget.set(budget.get() - size);
                freed += size;
                keys.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        Ok((keys, freed))
    }
}
