//! Builds through BuildKit's control API (`POST /grpc`), as buildx and Docker
//! Compose v2 drive them: the client opens a control `Solve` named by a ref and
//! its session, follows `Status` for that ref, and drives the build through the
//! frontend gateway (calls carrying the ref as `buildid`): a gateway `Solve` with
//! the `dockerfile.v0` frontend builds the Dockerfile from the session's files,
//! and `Return` hands back the result, which the control `Solve`'s exporters then
//! write (the image's names, a tar or a directory through the session) before it
//! answers. A control `Solve` may also name the frontend itself (older clients):
//! then it builds and exports in one call.

use super::backend::Parts;
use super::request::BuildRequest;
use super::sessions::Sessions;
use super::trace::Trace;
use berth_build::backend::{Event, Output};
use berth_buildkit::proto::StatusResponse;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Why a control or gateway call fails; the API maps each to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// The refusal of a raw LLB definition, wherever a client sends one.
pub const RAW_LLB: &str =
    "a raw LLB definition: berth builds Dockerfiles (the dockerfile.v0 frontend)";

/// An exporter the client asked for: its type and attributes.
pub type Exporter = (String, HashMap<String, String>);

/// A control `Solve`.
pub struct SolveSpec {
    pub r#ref: String,
    pub session: String,
    /// The frontend's attributes when the request names the frontend itself;
    /// `None` when the client drives the build through the gateway.
    pub frontend: Option<HashMap<String, String>>,
    pub exporters: Vec<Exporter>,
}

/// What the gateway returns: the refs of the result, or the client's error.
pub type Returned = Result<Vec<String>, String>;

/// A build in progress, by its ref.
#[derive(Default)]
pub struct Solve {
    feed: Mutex<Feed>,
    session: Mutex<Option<String>>,
    returned: Mutex<Option<oneshot::Sender<Returned>>>,
    /// The refs the gateway handed out (images this build made).
    built: Mutex<HashSet<String>>,
}

#[derive(Default)]
struct Feed {
    sent: Vec<StatusResponse>,
    subscribers: Vec<mpsc::UnboundedSender<StatusResponse>>,
    done: bool,
    trace: Trace,
}

impl Solve {
    fn publish(&self, e: Event) {
        let mut f = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = f.trace.status(e) {
            f.subscribers.retain(|t| t.send(s.clone()).is_ok());
            f.sent.push(s);
        }
    }

    fn finish(&self) {
        let mut f = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        f.done = true;
        f.subscribers.clear();
    }

    fn session(&self) -> Option<String> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The builds the control API knows, by ref.
#[derive(Default)]
pub struct Solves {
    map: Mutex<HashMap<String, Arc<Solve>>>,
    /// Told when a control Solve starts (the gateway's calls may come first).
    started: tokio::sync::Notify,
}

impl Solves {
    fn entry(&self, r: &str) -> (Arc<Solve>, bool) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(r) {
            Some(s) => (s.clone(), false),
            None => {
                let s = Arc::new(Solve::default());
                m.insert(r.to_string(), s.clone());
                (s, true)
            }
        }
    }

    /// The started solve `r`, waiting a little for its control Solve: a client
    /// makes that call and its gateway's at once.
    async fn get(&self, r: &str) -> Option<Arc<Solve>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let started = self.started.notified();
            let s = self
                .map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(r)
                .cloned();
            if let Some(s) = s.filter(|s| s.session().is_some()) {
                return Some(s);
            }
            if tokio::time::timeout_at(deadline, started).await.is_err() {
                return None;
            }
        }
    }

    /// Forgets `r` after a while: a client may ask for its status late.
    fn forget_later(self: &Arc<Self>, r: String, after: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut m = me.map.lock().unwrap_or_else(|p| p.into_inner());
            if m.get(&r)
                .is_some_and(|s| s.feed.lock().unwrap_or_else(|p| p.into_inner()).done)
            {
                m.remove(&r);
            }
        });
    }
}

/// Ends a solve's feed and forgets it, however its call ends.
struct Finish(Arc<Solves>, Arc<Solve>, String);

impl Drop for Finish {
    fn drop(&mut self) {
        self.1.finish();
        self.0
            .forget_later(std::mem::take(&mut self.2), Duration::from_secs(30));
    }
}

/// The frontend's attributes as a build request: the `dockerfile.v0` frontend's
/// keys (BuildKit's frontend/dockerfile/builder), the context and Dockerfile
/// from the session.
pub fn request_from_attrs(
    attrs: &HashMap<String, String>,
    session: &str,
) -> Result<BuildRequest, ControlError> {
    let mut req = BuildRequest {
        buildkit: true,
        remote: Some("client-session".into()),
        session: Some(session.to_string()),
        ..Default::default()
    };
    let invalid = |k: &str, v: &str, why: &str| {
        ControlError::Invalid(format!("invalid frontend option {k}={v:?}: {why}"))
    };
    let mut keys: Vec<_> = attrs.keys().collect();
    keys.sort();
    for k in keys {
        let v = attrs[k].as_str();
        if let Some(name) = k.strip_prefix("build-arg:") {
            req.build_args.insert(name.to_string(), v.to_string());
        } else if let Some(name) = k.strip_prefix("label:") {
            req.labels.insert(name.to_string(), v.to_string());
        } else if let Some(name) = k.strip_prefix("context:") {
            if !(v.starts_with("docker-image://") || v.starts_with("local:")) {
                return Err(ControlError::Unsupported(format!(
                    "named build context {name:?} ({v}): berth takes images (docker-image://) and the client's directories"
                )));
            }
            req.named_contexts.insert(name.to_string(), v.to_string());
        } else {
            match k.as_str() {
                "filename" => req.dockerfile = v.to_string(),
                "target" => req.target = v.to_string(),
                // A list of stages or none (all): berth builds every step afresh.
                "no-cache" => req.no_cache = true,
                "platform" => {
                    if v.contains(',') {
                        return Err(ControlError::Unsupported(format!(
                            "multi-platform build ({v}): berth's store keeps one image per name"
                        )));
                    }
                    req.platform = v.to_string();
                }
                "image-resolve-mode" => req.pull = v == "pull",
                "force-network-mode" => req.network_mode = v.to_string(),
                "add-hosts" => {
                    for h in v.split(',').filter(|h| !h.is_empty()) {
                        let (host, ip) = h
                            .split_once('=')
                            .ok_or_else(|| invalid(k, h, "want host=ip"))?;
                        req.extra_hosts.push(format!("{host}:{ip}"));
                    }
                }
                "shm-size" => {
                    req.shm_size = v.parse().map_err(|_| invalid(k, v, "want bytes"))?;
                }
                "ulimit" => {
                    for u in v.split(',').filter(|u| !u.is_empty()) {
                        let (name, limits) = u
                            .split_once('=')
                            .ok_or_else(|| invalid(k, u, "want name=soft[:hard]"))?;
                        let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
                        let n = |s: &str| s.parse::<i64>().map_err(|_| invalid(k, u, "not a number"));
                        req.ulimits.push(berth_api::Ulimit {
                            name: name.to_string(),
                            soft: n(soft)?,
                            hard: n(hard)?,
                        });
                    }
                }
                "cache-imports" => {
                    #[derive(serde::Deserialize)]
                    struct Entry {
                        #[serde(rename = "Type")]
                        kind: String,
                        #[serde(rename = "Attrs", default)]
                        attrs: HashMap<String, String>,
                    }
                    let entries: Vec<Entry> = serde_json::from_str(v)
                        .map_err(|e| invalid(k, v, &e.to_string()))?;
                    for e in entries {
                        match (e.kind.as_str(), e.attrs.get("ref")) {
                            ("registry", Some(r)) => req.cache_from.push(r.clone()),
                            (kind, _) => {
                                return Err(ControlError::Unsupported(format!(
                                    "cache import of type {kind:?}: berth imports the cache recorded in images (type=registry,ref=IMAGE)"
                                )))
                            }
                        }
                    }
                }
                "cgroup-parent" if !v.is_empty() => {
                    return Err(ControlError::Unsupported(format!(
                        "cgroup-parent {v:?} for a build: berth runs build steps under the daemon's cgroup parent"
                    )))
                }
                "dockerfilekey" | "contextkey" if v != "dockerfile" && v != "context" => {
                    return Err(ControlError::Unsupported(format!(
                        "{k}={v}: berth reads the Dockerfile and the context from the session's \"dockerfile\" and \"context\" directories"
                    )))
                }
                // Attestations, the frontend's capabilities, multi-platform
                // naming and the like change nothing in what berth builds.
                _ => {}
            }
        }
    }
    Ok(req)
}

/// Runs a build (the build service's own path) and answers the image made.
pub type Runner = Arc<
    dyn Fn(BuildRequest, Output) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>>
        + Send
        + Sync,
>;

/// The control API's builds: the registry of solves, and what exports results.
pub struct Control {
    solves: Arc<Solves>,
    parts: Arc<Parts>,
    sessions: Arc<Sessions>,
}

impl Control {
    pub fn new(parts: Arc<Parts>, sessions: Arc<Sessions>) -> Control {
        Control {
            solves: Default::default(),
            parts,
            sessions,
        }
    }

    /// A control `Solve`: waits for the gateway's result (or builds, when the
    /// request names the frontend), writes it with the exporters, and answers
    /// the exporters' response.
    pub async fn solve(
        &self,
        spec: SolveSpec,
        run: &Runner,
    ) -> Result<HashMap<String, String>, ControlError> {
        let r = self.solve_spec(spec, run).await;
        self.parts.gc_wake.notify_one();
        r
    }

    async fn solve_spec(
        &self,
        spec: SolveSpec,
        run: &Runner,
    ) -> Result<HashMap<String, String>, ControlError> {
        for (kind, _) in &spec.exporters {
            if !matches!(kind.as_str(), "moby" | "image" | "tar" | "local") {
                return Err(ControlError::Unsupported(format!(
                    "exporter {kind:?} is not supported by berthd: it writes the image (moby), a tar or a local directory"
                )));
            }
        }
        let (solve, new) = self.solves.entry(&spec.r#ref);
        if !new && solve.session().is_some() {
            return Err(ControlError::Invalid(format!(
                "a build with ref {} is already running",
                spec.r#ref
            )));
        }
        // Where the gateway's Return goes, in place before the gateway can see
        // the solve (its calls wait for the session to be set).
        enum From<'a> {
            Frontend(&'a HashMap<String, String>),
            Gateway(oneshot::Receiver<Returned>),
        }
        let source = match &spec.frontend {
            Some(attrs) => From::Frontend(attrs),
            None => {
                let (tx, rx) = oneshot::channel();
                *solve.returned.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
                From::Gateway(rx)
            }
        };
        *solve.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(spec.session.clone());
        self.solves.started.notify_waiters();
        let _finish = Finish(self.solves.clone(), solve.clone(), spec.r#ref.clone());
        let refs = match source {
            From::Frontend(attrs) => vec![build_for(&solve, attrs, run).await?],
            From::Gateway(rx) => match rx.await {
                Ok(Ok(refs)) => refs,
                Ok(Err(e)) => return Err(ControlError::Failed(e)),
                Err(_) => {
                    return Err(ControlError::Failed(
                        "the build's gateway went away without a result".into(),
                    ))
                }
            },
        };
        let image = match refs.as_slice() {
            [] => return Ok(HashMap::new()),
            [one] => one.clone(),
            _ => {
                return Err(ControlError::Unsupported(
                    "a result with several images (one per platform): berth's store keeps one image per name".into(),
                ))
            }
        };
        if spec.frontend.is_none()
            && !solve
                .built
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&image)
        {
            return Err(ControlError::Invalid(format!(
                "the result names {image}, which this build did not make"
            )));
        }
        self.export(&solve, &image, &spec.exporters).await
    }

    /// `Status` for `r`: what the build said so far, then what it says, until it
    /// ends.
    pub fn status(&self, r: &str) -> mpsc::UnboundedReceiver<StatusResponse> {
        let (solve, new) = self.solves.entry(r);
        if new {
            // Asked for before its Solve: forgotten if no Solve comes.
            let solves = self.solves.clone();
            let (r, s) = (r.to_string(), solve.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                if s.session().is_none() {
                    s.finish();
                    solves.forget_later(r, Duration::ZERO);
                }
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut f = solve.feed.lock().unwrap_or_else(|p| p.into_inner());
        for s in &f.sent {
            let _ = tx.send(s.clone());
        }
        if !f.done {
            f.subscribers.push(tx);
        }
        rx
    }

    /// A gateway `Solve` of build `build_id` with the `dockerfile.v0` frontend:
    /// builds and answers the ref of the image made.
    pub async fn gateway_solve(
        &self,
        build_id: &str,
        frontend: &str,
        opts: &HashMap<String, String>,
        run: &Runner,
    ) -> Result<String, ControlError> {
        let solve =
            self.solves.get(build_id).await.ok_or_else(|| {
                ControlError::NotFound(format!("no build {build_id:?} to solve for"))
            })?;
        if frontend != "dockerfile.v0" {
            return Err(ControlError::Unsupported(if frontend.is_empty() {
                RAW_LLB.into()
            } else {
                format!("frontend {frontend:?}: berth builds with the dockerfile.v0 frontend")
            }));
        }
        if let Some(r) = opts.get("requestid").filter(|r| r.starts_with("frontend.")) {
            return Err(ControlError::Unsupported(format!(
                "the frontend subrequest {r:?} (docker build --call / --check): berth does not answer it"
            )));
        }
        let id = build_for(&solve, opts, run).await?;
        solve
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        Ok(id)
    }

    /// A gateway `Return`: hands the result (or the client's error) to the
    /// waiting control `Solve`.
    pub async fn gateway_return(
        &self,
        build_id: &str,
        result: Returned,
    ) -> Result<(), ControlError> {
        let solve =
            self.solves.get(build_id).await.ok_or_else(|| {
                ControlError::NotFound(format!("no build {build_id:?} to return to"))
            })?;
        let tx = solve
            .returned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                ControlError::Invalid(format!("build {build_id:?} has already returned"))
            })?;
        let _ = tx.send(result);
        Ok(())
    }

    /// Whether the gateway of `build_id` may be pinged: its control Solve is
    /// known.
    pub async fn gateway_known(&self, build_id: &str) -> bool {
        self.solves.get(build_id).await.is_some()
    }

    /// Writes the image `id` with each exporter; answers what BuildKit's
    /// exporters answer (`containerimage.digest`, `image.name`).
    async fn export(
        &self,
        solve: &Arc<Solve>,
        id: &str,
        exporters: &[Exporter],
    ) -> Result<HashMap<String, String>, ControlError> {
        let mut response = HashMap::new();
        response.insert("containerimage.digest".to_string(), id.to_string());
        response.insert("containerimage.config.digest".to_string(), id.to_string());
        for (kind, attrs) in exporters {
            match kind.as_str() {
                "moby" | "image" => {
                    let names: Vec<&str> = attrs
                        .get("name")
                        .map(|n| n.split(',').filter(|n| !n.is_empty()).collect())
                        .unwrap_or_default();
                    for n in &names {
                        self.parts
                            .images
                            .tag(id, n)
                            .map_err(|e| ControlError::Invalid(e.to_string()))?;
                    }
                    if !names.is_empty() {
                        response.insert("image.name".to_string(), names.join(","));
                    }
                }
                "tar" | "local" => {
                    let session = solve.session().unwrap_or_default();
                    let s = self.sessions.get(&session).await.ok_or_else(|| {
                        ControlError::Failed(format!("no active session for {session}"))
                    })?;
                    let image = self
                        .parts
                        .store
                        .resolve(id)
                        .map_err(|e| ControlError::Failed(e.to_string()))?;
                    let scratch = self
                        .parts
                        .dir
                        .join("tmp")
                        .join(format!("{:016x}", rand::random::<u64>()));
                    let _guard = super::context::Scratch::new(scratch.clone())
                        .map_err(|e| ControlError::Failed(e.to_string()))?;
                    let steps = super::backend::Steps::new(
                        self.parts.clone(),
                        &BuildRequest::default(),
                        scratch,
                        Some(s),
                    );
                    let sent = if kind == "tar" {
                        steps.send_tar(&image.layers).await
                    } else {
                        steps.send_dir(&image.layers).await
                    };
                    sent.map_err(ControlError::Failed)?;
                }
                _ => unreachable!("exporters are checked when the solve starts"),
            }
        }
        Ok(response)
    }
}

/// Builds with the frontend's options `attrs` from the solve's session; its
/// progress goes to the solve's status.
async fn build_for(
    solve: &Arc<Solve>,
    attrs: &HashMap<String, String>,
    run: &Runner,
) -> Result<String, ControlError> {
    let session = solve
        .session()
        .ok_or_else(|| ControlError::Invalid("the build has no session".into()))?;
    let req = request_from_attrs(attrs, &session)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let feed = {
        let solve = solve.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                solve.publish(e);
            }
        })
    };
    let r = run(req, tx).await;
    let _ = feed.await;
    // BuildKit's client says "failed to solve:" itself.
    r.map_err(|e| {
        ControlError::Failed(
            e.strip_prefix("failed to solve: ")
                .map_or(e.clone(), String::from),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_dockerfile_frontends_options_become_a_build_request() {
        let r = request_from_attrs(
            &attrs(&[
                ("filename", "sub/Dockerfile.dev"),
                ("target", "test"),
                ("build-arg:A", "1"),
                ("label:l", "v"),
                ("no-cache", ""),
                ("add-hosts", "db=10.0.0.2,cache=10.0.0.3"),
                ("shm-size", "1048576"),
                ("ulimit", "nofile=1024:2048"),
                ("force-network-mode", "none"),
                (
                    "cache-imports",
                    r#"[{"Type":"registry","Attrs":{"ref":"app:cache"}}]"#,
                ),
                ("attest:provenance", "mode=min,inline-only=true"),
                ("context:base", "docker-image://busybox"),
                ("context:extra", "local:extra"),
            ]),
            "s1",
        )
        .unwrap();
        assert_eq!(r.dockerfile, "sub/Dockerfile.dev");
        assert_eq!(r.target, "test");
        assert_eq!(r.build_args["A"], "1");
        assert_eq!(r.labels["l"], "v");
        assert!(r.no_cache);
        assert_eq!(r.extra_hosts, ["db:10.0.0.2", "cache:10.0.0.3"]);
        assert_eq!(r.shm_size, 1 << 20);
        assert_eq!((r.ulimits[0].soft, r.ulimits[0].hard), (1024, 2048));
        assert_eq!(r.network_mode, "none");
        assert_eq!(r.cache_from, ["app:cache"]);
        assert_eq!(r.named_contexts["base"], "docker-image://busybox");
        assert_eq!(r.named_contexts["extra"], "local:extra");
        assert_eq!(r.session.as_deref(), Some("s1"));
        assert_eq!(r.remote.as_deref(), Some("client-session"));
    }

    #[test]
    fn options_berth_cannot_honour_are_refused_by_name() {
        for (k, v, word) in [
            (
                "context:base",
                "https://example.invalid/x.tar",
                "named build context",
            ),
            ("platform", "linux/amd64,linux/arm64", "multi-platform"),
            ("cache-imports", r#"[{"Type":"gha","Attrs":{}}]"#, "\"gha\""),
            ("shm-size", "big", "shm-size"),
            ("add-hosts", "nohost", "host=ip"),
        ] {
            let e = request_from_attrs(&attrs(&[(k, v)]), "s").unwrap_err();
            assert!(e.to_string().contains(word), "{k}: {e}");
        }
    }
}
