//! Plugins in and out: `docker plugin install` and `upgrade` from a registry
//! (the manifest's config must be a plugin config; every blob is checked
//! against its digest; the privileges the client accepted must be the ones the
//! plugin asks for), `docker plugin create` from a directory sent as a tar
//! (`config.json` and `rootfs/`), and `docker plugin push`.

use super::config::{check_privileges, Config, Privilege, RootFs};
use super::record::PluginObj;
use super::{familiar, io_err, Managed};
use crate::daemon::stream::{error_line, json_line};
use crate::error::{ApiError, ApiResult};
use berth_registry::auth::Credentials;
use berth_registry::manifest::{self, Descriptor, ImageManifest, Manifest};
use berth_registry::Registry;
use bytes::Bytes;
use serde_json::json;
use sha2::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

pub const PLUGIN_CONFIG: &str = "application/vnd.docker.plugin.v1+json";

/// A plugin's manifest and config as a registry has them.
struct Remote {
    registry: Arc<Registry>,
    /// The repository's path on its registry.
    path: String,
    manifest: ImageManifest,
    manifest_digest: String,
    config_bytes: Bytes,
    config: Config,
}

fn hex_of(digest: &str) -> ApiResult<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ApiError::invalid(format!("unsupported digest {digest:?}")))
}

fn status(s: &str) -> Bytes {
    json_line(json!({ "status": s }))
}

fn progress(s: &str, id: &str) -> Bytes {
    json_line(json!({ "status": s, "id": id, "progressDetail": {} }))
}

fn short(digest: &str) -> &str {
    let h = digest.strip_prefix("sha256:").unwrap_or(digest);
    &h[..h.len().min(12)]
}

impl Managed {
    /// Fetches the manifest and config of plugin `remote`.
    async fn remote(&self, remote: &str, creds: Option<Credentials>) -> ApiResult<Remote> {
        let r = berth_image::reference::Reference::parse(remote)
            .map_err(|e| ApiError::invalid(format!("invalid reference format: {remote:?}: {e}")))?;
        let (domain, path) = berth_registry::split_repo(&r.repo);
        let registry = self.puller.registry(&domain, creds)?;
        let reference = r
            .digest
            .clone()
            .or(r.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let (body, ct, _) = registry.manifest(&path, &reference).await?;
        let manifest_digest = berth_registry::digest_of(&body);
        if let Some(d) = &r.digest {
            if *d != manifest_digest {
                return Err(ApiError::invalid(format!(
                    "manifest of {remote} does not match its digest (got {manifest_digest})"
                )));
            }
        }
        let manifest = match Manifest::parse(&ct, &body)
            .map_err(|e| ApiError::invalid(format!("{remote}: {e}")))?
        {
            Manifest::Image(m) => m,
            Manifest::Index(_) => {
                return Err(ApiError::invalid(format!(
                    "{remote} is a manifest list, not a plugin"
                )))
            }
        };
        if manifest.config.media_type != PLUGIN_CONFIG {
            return Err(ApiError::invalid(format!(
                "did not find plugin config for specified reference {remote} (its config is {:?}: an image, not a plugin)",
                manifest.config.media_type
            )));
        }
        let config_bytes = registry
            .blob(&path, &manifest.config.digest, 0)
            .await?
            .bytes()
            .await?;
        if berth_registry::digest_of(&config_bytes) != manifest.config.digest {
            return Err(ApiError::invalid(format!(
                "plugin config of {remote} does not match its digest"
            )));
        }
        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| ApiError::invalid(format!("plugin config of {remote}: {e}")))?;
        config.validate().map_err(ApiError::invalid)?;
        Ok(Remote {
            registry,
            path,
            manifest,
            manifest_digest,
            config_bytes,
            config,
        })
    }

    /// `GET /plugins/privileges`.
    pub async fn privileges(
        &self,
        remote: &str,
        creds: Option<Credentials>,
    ) -> ApiResult<Vec<Privilege>> {
        Ok(self.remote(remote, creds).await?.config.privileges())
    }

    /// Downloads `remote`'s blobs into a new temporary plugin directory and
    /// unpacks its rootfs there.
    async fn download(&self, rem: &Remote, tx: &mpsc::Sender<Bytes>) -> ApiResult<PathBuf> {
        let tmp = self.tmp_dir()?;
        let result = async {
            let blobs = tmp.join("blobs");
            std::fs::write(
                blobs.join(hex_of(&rem.manifest.config.digest)?),
                &rem.config_bytes,
            )
            .map_err(|e| io_err("writing", &blobs, e))?;
            for l in &rem.manifest.layers {
                let id = short(&l.digest).to_string();
                let _ = tx.send(progress("Downloading", &id)).await;
                let file = blobs.join(hex_of(&l.digest)?);
                let mut out =
                    std::fs::File::create(&file).map_err(|e| io_err("creating", &file, e))?;
                let mut h = sha2::Sha256::new();
                let mut resp = rem.registry.blob(&rem.path, &l.digest, 0).await?;
                while let Some(chunk) = resp.chunk().await {
                    let chunk = chunk.map_err(|e| {
                        ApiError::internal(format!("downloading {}: {e}", l.digest))
                    })?;
                    h.update(&chunk);
                    out.write_all(&chunk)
                        .map_err(|e| io_err("writing", &file, e))?;
                }
                if format!("sha256:{}", hex::encode(h.finalize())) != l.digest {
                    return Err(ApiError::invalid(format!(
                        "layer {} of the plugin does not match its digest",
                        l.digest
                    )));
                }
                let _ = tx.send(progress("Download complete", &id)).await;
            }
            let layers: Vec<PathBuf> = rem
                .manifest
                .layers
                .iter()
                .map(|l| hex_of(&l.digest).map(|h| blobs.join(h)))
                .collect::<ApiResult<_>>()?;
            let rootfs = tmp.join("rootfs");
            tokio::task::spawn_blocking(move || unpack_layers(&layers, &rootfs))
                .await
                .map_err(|e| ApiError::internal(format!("unpacking the plugin: {e}")))??;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// `POST /plugins/pull`: the name the plugin gets (answered in a header
    /// before the stream) and the progress stream.
    pub async fn pull(
        self: &Arc<Self>,
        remote: &str,
        name: &str,
        creds: Option<Credentials>,
        accepted: Vec<Privilege>,
    ) -> ApiResult<(String, mpsc::Receiver<Bytes>)> {
        let remote_name = familiar(remote).or_else(|e| {
            // A digest reference pulls that manifest; its name is the tag-less repo.
            berth_image::reference::Reference::parse(remote)
                .ok()
                .filter(|r| r.digest.is_some())
                .map(|r| format!("{}:latest", r.repo))
                .ok_or(e)
        })?;
        let name = if name.is_empty() {
            remote_name.clone()
        } else {
            familiar(name).map_err(|e| {
                if e.message.contains("canonical") {
                    ApiError::invalid("cannot use digest in plugin tag")
                } else {
                    e
                }
            })?
        };
        if self.lookup(&name)?.is_some_and(|p| p.name() == name) {
            return Err(ApiError::conflict(format!("plugin {name} already exists")));
        }
        let rem = self.remote(remote, creds).await?;
        check_privileges(&rem.config.privileges(), &accepted).map_err(ApiError::invalid)?;
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        let (remote, out_name) = (remote.to_string(), name.clone());
        tokio::spawn(async move {
            let done = async {
                let (_, path) = berth_registry::split_repo(&remote_name);
                let tag = remote_name.rsplit_once(':').map_or("latest", |(_, t)| t);
                let _ = tx
                    .send(json_line(
                        json!({"status": format!("Pulling from {path}"), "id": tag}),
                    ))
                    .await;
                let tmp = me.download(&rem, &tx).await?;
                let _op = me.ops.lock().await;
                let reference = berth_image::reference::Reference::parse(&remote)
                    .map(|r| {
                        let (domain, path) = berth_registry::split_repo(&r.repo);
                        let full = format!("{domain}/{path}");
                        match (r.digest, r.tag) {
                            (Some(d), _) => format!("{full}@{d}"),
                            (None, t) => format!("{full}:{}", t.unwrap_or_else(|| "latest".into())),
                        }
                    })
                    .unwrap_or_else(|_| remote.clone());
                let p = match me.install(
                    name.clone(),
                    rem.config.clone(),
                    rem.manifest.config.digest.clone(),
                    rem.manifest
                        .layers
                        .iter()
                        .map(|l| l.digest.clone())
                        .collect(),
                    reference,
                    &tmp,
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&tmp);
                        return Err(e);
                    }
                };
                me.emit("pull", &remote_name, &name);
                let _ = tx
                    .send(status(&format!("Digest: {}", rem.manifest_digest)))
                    .await;
                let _ = tx
                    .send(status(&format!(
                        "Status: Downloaded newer image for {remote_name}"
                    )))
                    .await;
                Ok::<_, ApiError>(p)
            }
            .await;
            if let Err(e) = done {
                error_line(&tx, &e).await;
            }
        });
        Ok((out_name, rx))
    }

    /// `POST /plugins/{name}/upgrade`: a disabled plugin gets `remote`'s rootfs
    /// and config, and keeps its settings.
    pub async fn upgrade(
        self: &Arc<Self>,
        key: &str,
        remote: &str,
        creds: Option<Credentials>,
        accepted: Vec<Privilege>,
    ) -> ApiResult<mpsc::Receiver<Bytes>> {
        let p = self.get(key)?;
        if p.rec().plugin.enabled {
            return Err(ApiError::conflict(format!(
                "plugin must be disabled before upgrading: plugin {} is enabled",
                p.name()
            )));
        }
        let rem = self.remote(remote, creds).await?;
        check_privileges(&rem.config.privileges(), &accepted).map_err(ApiError::invalid)?;
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        let remote = remote.to_string();
        tokio::spawn(async move {
            let done = async {
                let tmp = me.download(&rem, &tx).await?;
                let _op = me.ops.lock().await;
                let result = (|| {
                    if p.rec().plugin.enabled {
                        return Err(ApiError::conflict(format!(
                            "plugin must be disabled before upgrading: plugin {} is enabled",
                            p.name()
                        )));
                    }
                    let dir = me.dir(&p.id);
                    for part in ["rootfs", "blobs"] {
                        let old = dir.join(format!("{part}-old"));
                        let _ = std::fs::remove_dir_all(&old);
                        std::fs::rename(dir.join(part), &old)
                            .map_err(|e| io_err("upgrading", &dir, e))?;
                        if let Err(e) = std::fs::rename(tmp.join(part), dir.join(part)) {
                            let _ = std::fs::rename(&old, dir.join(part));
                            return Err(io_err("upgrading", &dir, e));
                        }
                    }
                    {
                        let mut rec = p.rec();
                        rec.plugin.config = rem.config.clone();
                        rec.plugin.reference = remote.clone();
                        rec.config = rem.manifest.config.digest.clone();
                        rec.blobsums = rem
                            .manifest
                            .layers
                            .iter()
                            .map(|l| l.digest.clone())
                            .collect();
                    }
                    me.save(&p)?;
                    for part in ["rootfs", "blobs"] {
                        let _ = std::fs::remove_dir_all(dir.join(format!("{part}-old")));
                    }
                    Ok(())
                })();
                let _ = std::fs::remove_dir_all(&tmp);
                result?;
                me.emit("pull", &remote, &p.name());
                let _ = tx
                    .send(status(&format!("Digest: {}", rem.manifest_digest)))
                    .await;
                Ok::<_, ApiError>(())
            }
            .await;
            if let Err(e) = done {
                error_line(&tx, &e).await;
            }
        });
        Ok(rx)
    }

    /// `POST /plugins/create`: a plugin from a directory (`config.json` and
    /// `rootfs/`) sent as a tar, installed disabled.
    pub async fn create<R: Read + Send + 'static>(&self, name: &str, body: R) -> ApiResult<()> {
        let name = familiar(name)?;
        if self.lookup(&name)?.is_some_and(|p| p.name() == name) {
            return Err(ApiError::conflict(format!("plugin {name} already exists")));
        }
        let tmp = self.tmp_dir()?;
        let t = tmp.clone();
        let made = tokio::task::spawn_blocking(move || make_from_context(body, &t))
            .await
            .map_err(|e| ApiError::internal(format!("creating the plugin: {e}")))
            .and_then(|r| r);
        let (config, config_digest, blobsum) = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let _op = self.ops.lock().await;
        let p = match self.install(
            name.clone(),
            config,
            config_digest,
            vec![blobsum],
            name.clone(),
            &tmp,
        ) {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        self.emit("create", &p.id, &name);
        Ok(())
    }

    /// `POST /plugins/{name}/push`: its blobs (those the registry lacks) and a
    /// schema 2 manifest under the plugin's name.
    pub fn push(
        self: &Arc<Self>,
        key: &str,
        creds: Option<Credentials>,
    ) -> ApiResult<mpsc::Receiver<Bytes>> {
        let p = self.get(key)?;
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        tokio::spawn(async move {
            let done = async {
                let (obj, config_digest, blobsums): (PluginObj, String, Vec<String>) = {
                    let rec = p.rec();
                    (rec.plugin.clone(), rec.config.clone(), rec.blobsums.clone())
                };
                let r = berth_image::reference::Reference::parse(&obj.name).map_err(|e| {
                    ApiError::invalid(format!(
                        "plugin has invalid name {} for push: {e}",
                        obj.name
                    ))
                })?;
                let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
                let (domain, path) = berth_registry::split_repo(&r.repo);
                let registry = me.puller.registry(&domain, creds)?;
                let _ = tx
                    .send(status(&format!(
                        "The push refers to repository [{}]",
                        r.repo
                    )))
                    .await;
                let blobs = me.dir(&p.id).join("blobs");
                let read = |d: &str| -> ApiResult<Bytes> {
                    let f = blobs.join(hex_of(d)?);
                    std::fs::read(&f)
                        .map(Bytes::from)
                        .map_err(|e| io_err("reading", &f, e))
                };
                let mut layers = Vec::new();
                for d in &blobsums {
                    let _ = tx.send(progress("Preparing", short(d))).await;
                    let data = read(d)?;
                    let size = data.len() as i64;
                    if !registry.has_blob(&path, d).await? {
                        registry.upload_blob(&path, d, data).await?;
                    }
                    let _ = tx.send(progress("Pushed", short(d))).await;
                    layers.push(Descriptor {
                        media_type: manifest::DOCKER_LAYER_GZIP.into(),
                        digest: d.clone(),
                        size,
                        ..Default::default()
                    });
                }
                let config = read(&config_digest)?;
                let config_size = config.len() as i64;
                if !registry.has_blob(&path, &config_digest).await? {
                    registry.upload_blob(&path, &config_digest, config).await?;
                }
                let m = ImageManifest {
                    schema_version: 2,
                    media_type: manifest::DOCKER_MANIFEST.into(),
                    config: Descriptor {
                        media_type: PLUGIN_CONFIG.into(),
                        digest: config_digest.clone(),
                        size: config_size,
                        ..Default::default()
                    },
                    layers,
                };
                let body = Bytes::from(serde_json::to_vec(&m).expect("serialises"));
                let size = body.len();
                let digest = registry
                    .put_manifest(&path, &tag, manifest::DOCKER_MANIFEST, body)
                    .await?;
                let _ = tx
                    .send(status(&format!("{tag}: digest: {digest} size: {size}")))
                    .await;
                let _ = tx
                    .send(json_line(json!({
                        "progressDetail": {},
                        "aux": {"Tag": tag, "Digest": digest, "Size": size}
                    })))
                    .await;
                me.emit("push", &p.id, &obj.name);
                Ok::<_, ApiError>(())
            }
            .await;
            if let Err(e) = done {
                error_line(&tx, &e).await;
            }
        });
        Ok(rx)
    }
}

/// Unpacks compressed layers, in order, into `rootfs` (a plain directory: the
/// plugin's root, as dockerd keeps it).
fn unpack_layers(layers: &[PathBuf], rootfs: &Path) -> ApiResult<()> {
    for l in layers {
        let f = std::fs::File::open(l).map_err(|e| io_err("opening", l, e))?;
        let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(f));
        berth_image::extract::unpack(gz, rootfs, false).map_err(|e| {
            ApiError::invalid(format!("unpacking plugin layer {}: {e}", l.display()))
        })?;
    }
    Ok(())
}

/// Reads a `docker plugin create` context into `tmp`: the rootfs unpacked (by
/// berth's extractor, which keeps every entry beneath it), the layer blob
/// (gzip of the rootfs as a tar) and the config blob in `blobs/`. Returns the
/// config and the digests of the config and the layer.
fn make_from_context<R: Read>(body: R, tmp: &Path) -> ApiResult<(Config, String, String)> {
    let ctx = tmp.join("context");
    std::fs::create_dir_all(&ctx).map_err(|e| io_err("creating", &ctx, e))?;
    berth_image::extract::unpack(body, &ctx, false)
        .map_err(|e| ApiError::invalid(format!("reading the plugin context: {e}")))?;
    let config_path = ctx.join("config.json");
    let meta = std::fs::symlink_metadata(&config_path)
        .map_err(|_| ApiError::invalid("config not found"))?;
    if !meta.is_file() {
        return Err(ApiError::invalid("config not found"));
    }
    let mut config: Config = serde_json::from_slice(
        &std::fs::read(&config_path).map_err(|e| io_err("reading", &config_path, e))?,
    )
    .map_err(|e| ApiError::invalid(format!("failed to parse config: {e}")))?;
    config.validate().map_err(ApiError::invalid)?;
    let ctx_rootfs = ctx.join("rootfs");
    if !std::fs::symlink_metadata(&ctx_rootfs).is_ok_and(|m| m.is_dir()) {
        return Err(ApiError::invalid("no rootfs found"));
    }
    let rootfs = tmp.join("rootfs");
    std::fs::remove_dir(&rootfs).map_err(|e| io_err("preparing", &rootfs, e))?;
    std::fs::rename(&ctx_rootfs, &rootfs).map_err(|e| io_err("moving", &rootfs, e))?;
    let _ = std::fs::remove_dir_all(&ctx);
    // The layer: the rootfs as a tar (its digest is the diff ID), compressed
    // (its digest is the blob's).
    let blobs = tmp.join("blobs");
    let staging = blobs.join("layer.tmp");
    struct Hashing<W: Write> {
        inner: W,
        h: sha2::Sha256,
    }
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(b)?;
            self.h.update(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let file = std::fs::File::create(&staging).map_err(|e| io_err("creating", &staging, e))?;
    let gz = flate2::GzBuilder::new().mtime(0).write(
        Hashing {
            inner: std::io::BufWriter::new(file),
            h: sha2::Sha256::new(),
        },
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(Hashing {
        inner: gz,
        h: sha2::Sha256::new(),
    });
    tar.follow_symlinks(false);
    tar.append_dir_all("", &rootfs)
        .map_err(|e| io_err("archiving", &rootfs, e))?;
    let tarred = tar
        .into_inner()
        .map_err(|e| io_err("archiving", &rootfs, e))?;
    let diff_id = format!("sha256:{}", hex::encode(tarred.h.finalize()));
    let mut zipped = tarred
        .inner
        .finish()
        .map_err(|e| io_err("compressing", &rootfs, e))?;
    zipped.flush().map_err(|e| io_err("writing", &staging, e))?;
    let blobsum = format!("sha256:{}", hex::encode(zipped.h.finalize()));
    std::fs::rename(&staging, blobs.join(hex_of(&blobsum)?))
        .map_err(|e| io_err("writing", &staging, e))?;
    config.rootfs = Some(RootFs {
        diff_ids: vec![diff_id],
        kind: "layers".into(),
    });
    let config_bytes = serde_json::to_vec(&config).expect("serialises");
    let config_digest = berth_registry::digest_of(&config_bytes);
    let f = blobs.join(hex_of(&config_digest)?);
    std::fs::write(&f, &config_bytes).map_err(|e| io_err("writing", &f, e))?;
    Ok((config, config_digest, blobsum))
}
