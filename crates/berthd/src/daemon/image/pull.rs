//! `docker pull`: the manifest (through a list or index, for the platform asked),
//! the config, and the layers, downloaded in parallel and unpacked while they
//! stream. Every byte is checked against its digest before anything reaches the
//! store: layers are staged, and committed with the image only when all verified.
//! Progress goes out as Docker's JSON messages.

use crate::error::{ApiError, ApiResult};
use berth_api::ErrorKind;
use berth_image::{PulledLayer, Store};
use berth_registry::manifest::{self, Descriptor, ImageManifest, Manifest};
use berth_registry::{auth::Credentials, client, Registry};
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// Daemon-wide registry settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `insecure-registries`: hosts (`host:port`) or CIDRs spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// `registry-mirrors`: tried first for Docker Hub images.
    pub mirrors: Vec<String>,
    /// Where `<host>/ca.crt`, `client.cert` and `client.key` are looked up
    /// (/etc/docker/certs.d and /etc/berth/certs.d by default).
    pub certs_dirs: Vec<std::path::PathBuf>,
    /// `max-concurrent-downloads`: layers fetched at once, daemon-wide (0: no limit).
    pub max_downloads: usize,
    /// `max-concurrent-uploads`: layers pushed at once, daemon-wide (0: no limit).
    pub max_uploads: usize,
}

impl RegistryConfig {
    /// Plain HTTP for this registry? Loopback is insecure by default, as in Docker
    /// (127.0.0.0/8 and localhost).
    pub fn plain_http(&self, host: &str) -> bool {
        let name =
            host.rsplit_once(':').map_or(
                host,
                |(h, p)| if p.parse::<u16>().is_ok() { h } else { host },
            );
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        {
            return true;
        }
        self.insecure.iter().any(|i| {
            if i == host || i == name {
                return true;
            }
            match (
                i.parse::<berth_net::cidr::Subnet>(),
                name.parse::<std::net::IpAddr>(),
            ) {
                (Ok(net), Ok(ip)) => net.contains(&ip),
                _ => false,
            }
        })
    }
}

impl From<client::Error> for ApiError {
    fn from(e: client::Error) -> ApiError {
        let kind = match e.kind {
            client::ErrorKind::NotFound => ErrorKind::NotFound,
            client::ErrorKind::Unauthorized => ErrorKind::Unauthorized,
            client::ErrorKind::Invalid => ErrorKind::InvalidArgument,
            client::ErrorKind::Unavailable => ErrorKind::Internal,
        };
        ApiError::new(kind, e.message)
    }
}

/// `X-Registry-Auth`: base64url JSON of Docker's AuthConfig.
pub fn decode_auth(header: Option<&str>) -> Option<Credentials> {
    use base64::Engine;
    let h = header?.trim();
    if h.is_empty() {
        return None;
    }
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let c = Credentials {
        username: s("username"),
        password: s("password"),
        identity_token: s("identitytoken"),
    };
    (!c.is_empty()).then_some(c)
}

/// `X-Registry-Config` (a build's credentials): base64 JSON of registry host to
/// auth config. Docker Hub's keys (`https://index.docker.io/v1/`) become `docker.io`.
pub fn decode_registry_config(header: Option<&str>) -> HashMap<String, Credentials> {
    use base64::Engine;
    let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return HashMap::new();
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .unwrap_or_default();
    let v: HashMap<String, Value> = serde_json::from_slice(&raw).unwrap_or_default();
    v.into_iter()
        .filter_map(|(k, a)| {
            let s = |f: &str| a.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let c = Credentials {
                username: s("username"),
                password: s("password"),
                identity_token: s("identitytoken"),
            };
            let host = k
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
                "docker.io".to_string()
            } else {
                host
            };
            (!c.is_empty()).then_some((host, c))
        })
        .collect()
}

/// The registry host of a familiar image name (`docker.io` without one).
pub fn registry_of(name: &str) -> String {
    match name.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

/// What a pull has learned before it streams: where from, and what.
pub struct PullPlan {
    registry: Arc<Registry>,
    /// The repository's path on the registry.
    path: String,
    /// Familiar `repo:tag` to record, or None when pulled by digest alone.
    tag: Option<String>,
    /// `repo@digest` (RepoDigests).
    repo_digest: String,
    manifest: ImageManifest,
    config_bytes: Bytes,
    diff_ids: Vec<String>,
    /// The name the user gave, for messages.
    shown: String,
    id_tag: String,
}

pub struct Puller {
    store: Arc<Store>,
    /// Replaced whole when the daemon reloads its configuration (SIGHUP).
    config: std::sync::RwLock<RegistryConfig>,
    /// Layers being fetched, by diff id: a second pull waits for the first.
    inflight: Mutex<HashMap<String, watch::Receiver<bool>>>,
    pub(super) downloads: super::limit::Limiter,
    pub(super) uploads: super::limit::Limiter,
}

fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

pub(super) use crate::daemon::stream::json_line;

fn msg(status: &str, id: Option<&str>) -> Value {
    let mut v = json!({ "status": status });
    if let Some(id) = id {
        v["id"] = json!(id);
        v["progressDetail"] = json!({});
    }
    v
}

/// Reads a blob's bytes from a channel fed by the download, hashing them.
struct BlobReader {
    rx: std::sync::mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A decompressing reader for a layer's media type (and its magic, when the type
/// says nothing).
fn decompress<'a>(
    media_type: &str,
    mut r: std::io::BufReader<BlobReader>,
) -> std::io::Result<Box<dyn Read + 'a>> {
    use std::io::BufRead;
    let head = r.fill_buf()?.to_vec();
    let zstd = media_type.ends_with("+zstd") || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let gzip = !zstd && (media_type.ends_with("gzip") || head.starts_with(&[0x1f, 0x8b]));
    Ok(if zstd {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(r)
                .map_err(|e| std::io::Error::other(format!("zstd: {e}")))?,
        )
    } else if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    })
}

impl Puller {
    pub fn new(store: Arc<Store>, config: RegistryConfig) -> Puller {
        Puller {
            store,
            downloads: super::limit::Limiter::new(config.max_downloads),
            uploads: super::limit::Limiter::new(config.max_uploads),
            config: std::sync::RwLock::new(config),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// The registry settings in force.
    pub fn current_config(&self) -> RegistryConfig {
        self.config()
    }

    fn config(&self) -> RegistryConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// New registry settings (a reload): pulls and pushes from now on use them.
    pub fn set_config(&self, c: RegistryConfig) {
        self.downloads.set_limit(c.max_downloads);
        self.uploads.set_limit(c.max_uploads);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// A client for `host`: plain HTTP when asked (`http://` mirrors); for an
    /// insecure registry HTTPS unverified, then plain HTTP (Docker's way); else
    /// HTTPS with the system's roots and the host's own CA and client certificate
    /// from the certs directories.
    fn client(
        &self,
        host: &str,
        http_only: bool,
        creds: Option<Credentials>,
    ) -> ApiResult<Registry> {
        if http_only {
            return Ok(Registry::new(host, true, creds));
        }
        let config = self.config();
        if config.plain_http(host) {
            return Ok(Registry::insecure(host, creds));
        }
        let tls = berth_registry::tls::client_config(host, &config.certs_dirs)
            .map_err(|e| ApiError::invalid(format!("TLS for {host}: {e}")))?;
        Ok(Registry::new(host, false, creds).with_tls(tls))
    }

    /// The registries to try for `domain`: the mirrors first for Docker Hub.
    fn registries(
        &self,
        domain: &str,
        creds: Option<Credentials>,
    ) -> ApiResult<Vec<Arc<Registry>>> {
        let mut out = Vec::new();
        if domain == berth_registry::DOCKER_HUB {
            for m in &self.config().mirrors {
                let host = m
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/');
                out.push(Arc::new(self.client(
                    host,
                    m.starts_with("http://"),
                    None,
                )?));
            }
        }
        let host = if domain == berth_registry::DOCKER_HUB {
            berth_registry::DOCKER_HUB_HOST
        } else {
            domain
        };
        out.push(Arc::new(self.client(host, false, creds)?));
        Ok(out)
    }

    pub(super) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A registry client for pushing to `domain`.
    pub fn registry(&self, domain: &str, creds: Option<Credentials>) -> ApiResult<Arc<Registry>> {
        Ok(self
            .registries(domain, creds)?
            .pop()
            .expect("at least the registry itself"))
    }

    /// `GET /distribution/{name}/json`: the descriptor of the manifest `name`
    /// resolves to on its registry, and the platforms it offers (an index's
    /// entries, or the image's own from its config).
    pub async fn distribution(
        &self,
        name: &str,
        creds: Option<Credentials>,
    ) -> ApiResult<serde_json::Value> {
        let r = berth_image::reference::Reference::parse(name)
            .map_err(|e| ApiError::invalid(format!("invalid reference format: {e}")))?;
        let (domain, path) = berth_registry::split_repo(&r.repo);
        let reference = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let registry = self.registry(&domain, creds)?;
        let (body, ct, digest) = registry
            .manifest(&path, &reference)
            .await
            .map_err(ApiError::from)?;
        let digest = digest.unwrap_or_else(|| format!("sha256:{}", berth_image::sha256_hex(&body)));
        let parsed = Manifest::parse(&ct, &body).map_err(|e| ApiError::invalid(e.to_string()))?;
        let platform = |os: &str, arch: &str, variant: Option<&str>| {
            let mut p = serde_json::json!({ "architecture": arch, "os": os });
            if let Some(v) = variant.filter(|v| !v.is_empty()) {
                p["variant"] = v.into();
            }
            p
        };
        let (media_type, platforms) = match &parsed {
            Manifest::Index(i) => (
                if i.media_type.is_empty() {
                    manifest::OCI_INDEX.to_string()
                } else {
                    i.media_type.clone()
                },
                i.manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    .map(|p| platform(&p.os, &p.architecture, p.variant.as_deref()))
                    .collect::<Vec<_>>(),
            ),
            Manifest::Image(m) => {
                let config = registry
                    .blob(&path, &m.config.digest, 0)
                    .await
                    .map_err(ApiError::from)?
                    .bytes()
                    .await
                    .map_err(ApiError::from)?;
                let c: serde_json::Value = serde_json::from_slice(&config)
                    .map_err(|e| ApiError::invalid(format!("the image's config: {e}")))?;
                let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                (
                    if m.media_type.is_empty() {
                        manifest::OCI_MANIFEST.to_string()
                    } else {
                        m.media_type.clone()
                    },
                    vec![platform(
                        &s("os"),
                        &s("architecture"),
                        c["variant"].as_str(),
                    )],
                )
            }
        };
        Ok(serde_json::json!({
            "Descriptor": {
                "mediaType": media_type,
                "digest": digest,
                "size": body.len(),
            },
            "Platforms": platforms,
        }))
    }

    /// Resolves what to pull: manifest (through a list or index for `platform`) and
    /// config, both checked against their digests. Errors here are the request's.
    pub async fn plan(
        &self,
        image: &str,
        tag: &str,
        platform: Option<&str>,
        creds: Option<Credentials>,
    ) -> ApiResult<PullPlan> {
        let full = if tag.is_empty() || image.contains('@') {
            image.to_string()
        } else if tag.starts_with("sha256:") {
            format!("{image}@{tag}")
        } else {
            format!("{image}:{tag}")
        };
        let r = berth_image::reference::Reference::parse(&full)
            .map_err(|e| ApiError::invalid(format!("invalid reference format: {full:?}: {e}")))?;
        let (domain, path) = berth_registry::split_repo(&r.repo);
        let reference = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let want = match platform.filter(|p| !p.is_empty()) {
            Some(p) => manifest::parse_platform(p).ok_or_else(|| {
                ApiError::invalid(format!("invalid platform {p:?}: use os/arch[/variant]"))
            })?,
            None => manifest::Platform {
                os: "linux".into(),
                architecture: berth_image::host_arch().into(),
                variant: None,
            },
        };
        let mut last_err = None;
        for registry in self.registries(&domain, creds.clone())? {
            match self
                .plan_on(&registry, &path, &reference, r.digest.as_deref(), &want)
                .await
            {
                Ok((manifest, digest, config_bytes, diff_ids)) => {
                    let tag = r.tagged().filter(|_| r.digest.is_none());
                    return Ok(PullPlan {
                        registry,
                        path,
                        repo_digest: format!("{}@{digest}", r.repo),
                        tag: tag.clone(),
                        manifest,
                        config_bytes,
                        diff_ids,
                        shown: r.repo.clone(),
                        id_tag: r
                            .digest
                            .clone()
                            .or(r.tag.clone())
                            .unwrap_or_else(|| "latest".into()),
                    });
                }
                Err(e) => {
                    tracing::debug!(registry = %registry.host, error = %e, "pull plan failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| super::Error::NoRegistry.into()))
    }

    async fn plan_on(
        &self,
        registry: &Registry,
        path: &str,
        reference: &str,
        pinned: Option<&str>,
        want: &manifest::Platform,
    ) -> ApiResult<(ImageManifest, String, Bytes, Vec<String>)> {
        let (body, ct, _) = registry.manifest(path, reference).await.map_err(|e| {
            let mut a = ApiError::from(e);
            if a.kind == ErrorKind::NotFound {
                // Docker's words: the name as given, then the registry's.
                let why = a
                    .message
                    .rsplit(": ")
                    .next()
                    .unwrap_or("manifest unknown")
                    .to_string();
                let sep = if reference.starts_with("sha256:") {
                    '@'
                } else {
                    ':'
                };
                a.message = format!(
                    "manifest for {}/{path}{sep}{reference} not found: {why}",
                    registry.host
                );
            }
            a
        })?;
        let digest = berth_registry::digest_of(&body);
        if let Some(p) = pinned {
            if p != digest {
                return Err(ApiError::invalid(format!(
                    "manifest verification failed for digest {p}: the registry sent {digest}"
                )));
            }
        }
        let parsed = Manifest::parse(&ct, &body).map_err(|e| ApiError::invalid(e.to_string()))?;
        let (image, digest) = match parsed {
            Manifest::Image(m) => (m, digest),
            Manifest::Index(i) => {
                let d = manifest::select(&i, want).ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no matching manifest for {}/{}{} in the manifest list entries",
                        want.os,
                        want.architecture,
                        want.variant
                            .as_ref()
                            .map(|v| format!("/{v}"))
                            .unwrap_or_default()
                    ))
                })?;
                let (body, ct, _) = registry.manifest(path, &d.digest).await?;
                let got = berth_registry::digest_of(&body);
                if got != d.digest {
                    return Err(ApiError::invalid(format!(
                        "manifest verification failed for digest {}: the registry sent {got}",
                        d.digest
                    )));
                }
                match Manifest::parse(&ct, &body).map_err(|e| ApiError::invalid(e.to_string()))? {
                    Manifest::Image(m) => (m, d.digest.clone()),
                    Manifest::Index(_) => {
                        return Err(ApiError::invalid("a manifest list inside a manifest list"))
                    }
                }
            }
        };
        let config_bytes = registry
            .blob(path, &image.config.digest, 0)
            .await?
            .bytes()
            .await?;
        let got = berth_registry::digest_of(&config_bytes);
        if got != image.config.digest {
            return Err(ApiError::invalid(format!(
                "image config verification failed for digest {}: got {got}",
                image.config.digest
            )));
        }
        let cfg: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| ApiError::invalid(format!("invalid image config: {e}")))?;
        let diff_ids: Vec<String> = cfg
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != image.layers.len() {
            return Err(ApiError::invalid(format!(
                "the manifest has {} layers and the config {} diff ids",
                image.layers.len(),
                diff_ids.len()
            )));
        }
        Ok((image, digest, config_bytes, diff_ids))
    }

    /// Runs a planned pull, sending Docker's JSON messages; returns the image id.
    pub async fn run(
        self: &Arc<Self>,
        plan: PullPlan,
        tx: &mpsc::Sender<Bytes>,
    ) -> ApiResult<String> {
        let send = |v: Value| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(json_line(v)).await;
            }
        };
        send(msg(
            &format!("Pulling from {}", plan.path),
            Some(&plan.id_tag),
        ))
        .await;
        let mut tasks = Vec::new();
        let mut mine: Vec<(String, watch::Sender<bool>)> = Vec::new();
        for (i, (desc, diff_id)) in plan.manifest.layers.iter().zip(&plan.diff_ids).enumerate() {
            let id = short(&desc.digest);
            if mine.iter().any(|(d, _)| d == diff_id) {
                // Repeated in this image (empty layers): fetched once.
                let d = diff_id.clone();
                tasks.push(tokio::spawn(async move {
                    Ok::<_, ApiError>(PulledLayer::Again(d))
                }));
                continue;
            }
            // Someone else is fetching it: wait, then use theirs if it landed. The
            // check and the claim are one step, so two pulls never both fetch.
            loop {
                let waiting = {
                    let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                    match inflight.get(diff_id) {
                        Some(rx) => Some(rx.clone()),
                        None => {
                            if self.store.layer_size(diff_id)?.is_none() {
                                let (done_tx, done_rx) = watch::channel(false);
                                inflight.insert(diff_id.clone(), done_rx);
                                mine.push((diff_id.clone(), done_tx));
                            }
                            None
                        }
                    }
                };
                match waiting {
                    Some(mut rx) => {
                        send(msg("Waiting", Some(&id))).await;
                        let _ = rx.wait_for(|done| *done).await;
                    }
                    None => break,
                }
            }
            if !mine.iter().any(|(d, _)| d == diff_id) {
                let size = self.store.layer_size(diff_id)?.unwrap_or(0);
                send(msg("Already exists", Some(&id))).await;
                let d = diff_id.clone();
                tasks.push(tokio::spawn(async move {
                    Ok::<_, ApiError>(PulledLayer::Existing(d, size))
                }));
                continue;
            }
            send(msg("Pulling fs layer", Some(&id))).await;
            let me = self.clone();
            let registry = plan.registry.clone();
            let path = plan.path.clone();
            let desc = desc.clone();
            let diff_id = diff_id.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                me.fetch_layer(i, &registry, &path, &desc, &diff_id, &tx)
                    .await
            }));
        }
        let mut layers = Vec::new();
        let mut failure = None;
        for t in tasks {
            match t.await {
                Ok(Ok(l)) => layers.push(l),
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(e) => {
                    failure.get_or_insert(
                        super::Error::Task {
                            what: "layer download",
                            source: e,
                        }
                        .into(),
                    );
                }
            }
        }
        let result = match failure {
            Some(e) => Err(e),
            None => {
                let store = self.store.clone();
                let config = plan.config_bytes.clone();
                let tags: Vec<String> = plan.tag.iter().cloned().collect();
                let repo_digest = plan.repo_digest.clone();
                let blobs: Vec<(String, Descriptor)> = plan
                    .diff_ids
                    .iter()
                    .cloned()
                    .zip(plan.manifest.layers.iter().cloned())
                    .collect();
                let repo_key = format!("{}/{}", plan.registry.host, plan.path);
                tokio::task::spawn_blocking(move || {
                    let (id, _) = store.commit_pulled(&config, layers, &tags)?;
                    store.add_repo_digest(&id, &repo_digest)?;
                    // What each layer is called on this registry, for later pushes.
                    for (diff_id, d) in blobs {
                        store.add_blob_digest(
                            &diff_id,
                            &d.digest,
                            &d.media_type,
                            d.size,
                            &repo_key,
                        )?;
                    }
                    Ok::<_, ApiError>(id)
                })
                .await
                .map_err(|source| super::Error::Task {
                    what: "pull",
                    source,
                })?
            }
        };
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            for (d, tx) in mine {
                inflight.remove(&d);
                let _ = tx.send(true);
            }
        }
        let id = result?;
        let digest = plan
            .repo_digest
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_string();
        send(msg(&format!("Digest: {digest}"), None)).await;
        let name = plan.tag.clone().unwrap_or_else(|| plan.repo_digest.clone());
        send(msg(
            &format!("Status: Downloaded newer image for {name}"),
            None,
        ))
        .await;
        let _ = plan.shown;
        Ok(id)
    }

    /// Downloads one layer (resuming a broken download with a Range request),
    /// checking its digest and unpacking it while it streams.
    async fn fetch_layer(
        &self,
        index: usize,
        registry: &Registry,
        path: &str,
        desc: &Descriptor,
        diff_id: &str,
        tx: &mpsc::Sender<Bytes>,
    ) -> ApiResult<PulledLayer> {
        let id = short(&desc.digest);
        let _slot = match self.downloads.try_take() {
            Some(s) => s,
            None => {
                let _ = tx.send(json_line(msg("Waiting", Some(&id)))).await;
                self.downloads.take().await
            }
        };
        let (chunk_tx, chunk_rx) = std::sync::mpsc::sync_channel::<Result<Bytes, String>>(32);
        let store = self.store.clone();
        let media = desc.media_type.clone();
        let expected = diff_id.to_string();
        let unpack = tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::with_capacity(
                256 * 1024,
                BlobReader {
                    rx: chunk_rx,
                    cur: Bytes::new(),
                },
            );
            let r = decompress(&media, reader)
                .map_err(|e| ApiError::invalid(format!("layer {index}: {e}")))?;
            store
                .stage_layer(index, r, Some(&expected))
                .map_err(ApiError::from)
        });
        let mut hasher = sha2::Sha256::new();
        let mut got: u64 = 0;
        let mut attempts = 0;
        let mut last_report = 0u64;
        let total = desc.size.max(0) as u64;
        let download: ApiResult<()> = async {
            loop {
                let mut resp = match registry.blob(path, &desc.digest, got).await {
                    Ok(r) => r,
                    Err(e) if attempts < 3 && e.kind == client::ErrorKind::Unavailable => {
                        attempts += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(200 << attempts)).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if got > 0 && !resp.is_partial() {
                    return Err(super::Error::NoRanges {
                        digest: desc.digest.clone(),
                        status: resp.status.to_string(),
                    }
                    .into());
                }
                let broke = loop {
                    match resp.chunk().await {
                        None => break None,
                        Some(Ok(d)) => {
                            {
                                hasher.update(&d);
                                got += d.len() as u64;
                                if chunk_tx.send(Ok(d)).is_err() {
                                    // The unpacker stopped: its error tells why.
                                    return Ok(());
                                }
                                if got - last_report >= 256 * 1024 || got == total {
                                    last_report = got;
                                    let v = json!({ "status": "Downloading", "progressDetail": { "current": got, "total": total }, "id": id });
                                    let _ = tx.send(json_line(v)).await;
                                }
                            }
                        }
                        Some(Err(e)) => break Some(e),
                    }
                };
                match broke {
                    None => return Ok(()),
                    Some(e) if attempts < 3 => {
                        attempts += 1;
                        tracing::info!(blob = %desc.digest, at = got, error = %e, "download broke, resuming");
                    }
                    Some(e) => {
                        return Err(super::Error::Download {
                            digest: desc.digest.clone(),
                            attempts,
                            reason: e,
                        }
                        .into())
                    }
                }
            }
        }
        .await;
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if let Err(e) = &download {
            let _ = chunk_tx.send(Err(e.message.clone()));
        }
        drop(chunk_tx);
        let staged = unpack.await.map_err(|source| super::Error::Task {
            what: "unpack",
            source,
        })?;
        download?;
        if digest != desc.digest {
            // The staged layer is dropped here, with its directory: nothing kept.
            return Err(ApiError::invalid(format!(
                "filesystem layer verification failed for digest {}: got {digest}",
                desc.digest
            )));
        }
        let staged = staged?;
        let line = |s: &str| {
            let mut l = serde_json::to_vec(&msg(s, Some(&id))).expect("serialises");
            l.push(b'\n');
            Bytes::from(l)
        };
        let _ = tx.send(line("Download complete")).await;
        let _ = tx.send(line("Pull complete")).await;
        Ok(PulledLayer::Staged(staged))
    }
}

impl Puller {
    /// `POST /auth`: checks credentials against the registry (`docker login`).
    pub async fn login(&self, server: &str, creds: Credentials) -> ApiResult<()> {
        let host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .trim_end_matches("/v2");
        let domain = if host.is_empty() || host == "index.docker.io" || host == "docker.io" {
            berth_registry::DOCKER_HUB
        } else {
            host
        };
        let registry = self.registry(domain, Some(creds))?;
        registry.ping().await.map_err(|e| {
            let mut a = ApiError::from(e);
            if a.kind == ErrorKind::Unauthorized {
                a.message = format!(
                    "login attempt to {}://{}/v2/ failed: {}",
                    if self.config().plain_http(domain) {
                        "http"
                    } else {
                        "https"
                    },
                    registry.host,
                    a.message.trim_start_matches("logging in: ")
                );
            }
            a
        })
    }
}
