//! `docker push`: each layer is checked on the registry first (HEAD) and skipped
//! when there, mounted from another repository of the same registry when the store
//! knows one that has it, and otherwise gzip-compressed and uploaded in one pass (a
//! streamed, chunked PATCH, closed by a PUT with the digest), all layers at once;
//! then the config (one monolithic PUT) and the manifest. Progress goes out as
//! Docker's JSON messages.

use crate::daemon::image::pull::Puller;
use crate::error::{ApiError, ApiResult};
use berth_registry::auth::Credentials;
use berth_registry::manifest::{self, Descriptor, ImageManifest};
use bytes::Bytes;
use serde_json::json;
use sha2::Digest;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::pull::json_line as line;

fn status(s: &str, id: Option<&str>) -> Bytes {
    let mut v = json!({ "status": s });
    if let Some(id) = id {
        v["id"] = json!(id);
        v["progressDetail"] = json!({});
    }
    line(v)
}

/// Compresses a layer tar into `out`, in chunks, returning the blob's digest and
/// size. No name and no time in the gzip header: the same layer always gives the
/// same blob.
fn gzip_stream(src: &std::path::Path, out: mpsc::Sender<Bytes>) -> std::io::Result<(String, i64)> {
    struct Chunks {
        out: mpsc::Sender<Bytes>,
        buf: Vec<u8>,
        h: sha2::Sha256,
        n: u64,
    }
    impl Chunks {
        fn send(&mut self) -> std::io::Result<()> {
            if self.buf.is_empty() {
                return Ok(());
            }
            let b = Bytes::from(std::mem::take(&mut self.buf));
            self.out.blocking_send(b).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped")
            })
        }
    }
    impl Write for Chunks {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.h.update(data);
            self.n += data.len() as u64;
            self.buf.extend_from_slice(data);
            if self.buf.len() >= 256 * 1024 {
                self.send()?;
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.send()
        }
    }
    let chunks = Chunks {
        out,
        buf: Vec::with_capacity(256 * 1024),
        h: sha2::Sha256::new(),
        n: 0,
    };
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(chunks, flate2::Compression::fast());
    std::io::copy(
        &mut std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(src)?),
        &mut gz,
    )?;
    let mut chunks = gz.finish()?;
    chunks.flush()?;
    Ok((
        format!("sha256:{}", hex::encode(chunks.h.finalize())),
        chunks.n as i64,
    ))
}

impl Puller {
    /// Pushes `name[:tag]` (the tag defaults to latest); returns the manifest digest.
    pub async fn push(
        self: &Arc<Self>,
        name: &str,
        tag: &str,
        creds: Option<Credentials>,
        tx: &mpsc::Sender<Bytes>,
    ) -> ApiResult<String> {
        let r = berth_image::reference::Reference::parse(name)
            .map_err(|e| ApiError::invalid(format!("invalid reference format: {name:?}: {e}")))?;
        let tag = if !tag.is_empty() {
            tag.to_string()
        } else {
            r.tag.clone().unwrap_or_else(|| "latest".into())
        };
        let local = format!("{}:{tag}", r.repo);
        let image = self.store().resolve(&local).map_err(|_| {
            ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                r.repo
            ))
        })?;
        let (domain, path) = berth_registry::split_repo(&r.repo);
        let registry = self.registry(&domain, creds)?;
        let repo_key = format!("{}/{path}", registry.host);
        let _ = tx
            .send(status(
                &format!(
                    "The push refers to repository [{}]",
                    if domain == berth_registry::DOCKER_HUB {
                        format!("docker.io/{path}")
                    } else {
                        r.repo.clone()
                    }
                ),
                None,
            ))
            .await;
        for (d, _) in image.layers.iter().rev() {
            let _ = tx
                .send(status(
                    "Preparing",
                    Some(&d.trim_start_matches("sha256:")[..12]),
                ))
                .await;
        }
        // Every layer at once, as Docker does; the manifest keeps their order.
        let mut tasks = Vec::new();
        for (diff_id, _) in image.layers.clone() {
            let me = self.clone();
            let registry = registry.clone();
            let (path, repo_key, tx) = (path.clone(), repo_key.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                me.push_layer(&registry, &path, &repo_key, &diff_id, &tx)
                    .await
            }));
        }
        let mut descs = Vec::new();
        for t in tasks {
            descs.push(t.await.map_err(|source| super::Error::Task {
                what: "layer push",
                source,
            })??);
        }
        // Docker's schema 2 when every layer is gzip (OCI's gzip type is the same
        // bytes), else an OCI manifest, which can say zstd or plain tar.
        let all_gzip = descs.iter().all(|d| d.media_type.ends_with("gzip"));
        let (manifest_type, config_type) = if all_gzip {
            for d in descs.iter_mut() {
                d.media_type = manifest::DOCKER_LAYER_GZIP.into();
            }
            (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG)
        } else {
            for d in descs
                .iter_mut()
                .filter(|d| d.media_type == manifest::DOCKER_LAYER_GZIP)
            {
                d.media_type = manifest::OCI_LAYER_GZIP.into();
            }
            (manifest::OCI_MANIFEST, manifest::OCI_CONFIG)
        };
        // The config, then the manifest.
        let config = Bytes::from(image.config_bytes.clone());
        if !registry.has_blob(&path, &image.id).await? {
            registry
                .upload_blob(&path, &image.id, config.clone())
                .await?;
        }
        let m = ImageManifest {
            schema_version: 2,
            media_type: manifest_type.into(),
            config: Descriptor {
                media_type: config_type.into(),
                digest: image.id.clone(),
                size: config.len() as i64,
                ..Default::default()
            },
            layers: descs,
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&m).expect("serialises"));
        let size = body.len();
        let digest = registry
            .put_manifest(&path, &tag, manifest_type, body)
            .await?;
        self.store()
            .add_repo_digest(&image.id, &format!("{}@{digest}", r.repo))?;
        let _ = tx
            .send(status(
                &format!("{tag}: digest: {digest} size: {size}"),
                None,
            ))
            .await;
        let _ = tx
            .send(line(json!({ "progressDetail": {}, "aux": { "Tag": tag, "Digest": digest, "Size": size } })))
            .await;
        Ok(digest)
    }
}

impl Puller {
    /// One layer: skipped when the registry has it, mounted when another of its
    /// repositories does, else compressed and uploaded in one streamed pass.
    async fn push_layer(
        &self,
        registry: &berth_registry::Registry,
        path: &str,
        repo_key: &str,
        diff_id: &str,
        tx: &mpsc::Sender<Bytes>,
    ) -> ApiResult<Descriptor> {
        let id = diff_id.trim_start_matches("sha256:")[..12].to_string();
        let _slot = match self.uploads.try_take() {
            Some(s) => s,
            None => {
                let _ = tx.send(status("Waiting", Some(&id))).await;
                self.uploads.take().await
            }
        };
        let known = self.store().blob_digests(diff_id)?;
        let mut done = None;
        for (digest, media, size, _) in known.iter().filter(|k| k.3 == repo_key) {
            if registry.has_blob(path, digest).await? {
                done = Some(Descriptor {
                    media_type: media.clone(),
                    digest: digest.clone(),
                    size: *size,
                    ..Default::default()
                });
                let _ = tx.send(status("Layer already exists", Some(&id))).await;
                break;
            }
        }
        if done.is_none() {
            let prefix = format!("{}/", registry.host);
            for (digest, media, size, repo) in known
                .iter()
                .filter(|k| k.3 != repo_key && k.3.starts_with(&prefix))
            {
                let from = &repo[prefix.len()..];
                if registry.mount_blob(path, digest, from).await? {
                    done = Some(Descriptor {
                        media_type: media.clone(),
                        digest: digest.clone(),
                        size: *size,
                        ..Default::default()
                    });
                    let _ = tx
                        .send(status(&format!("Mounted from {from}"), Some(&id)))
                        .await;
                    break;
                }
            }
        }
        let desc = match done {
            Some(d) => d,
            None => {
                let _ = tx.send(status("Pushing", Some(&id))).await;
                let location = registry.upload_start(path).await?;
                let (data_tx, data_rx) = mpsc::channel::<Bytes>(8);
                let src = self.store().layer_dir(diff_id).join("layer.tar");
                let compress = tokio::task::spawn_blocking(move || gzip_stream(&src, data_tx));
                let sent = registry.upload_stream(path, &location, data_rx).await;
                let (digest, size) = compress
                    .await
                    .map_err(|source| super::Error::Task {
                        what: "compress",
                        source,
                    })?
                    .map_err(|source| super::Error::Compress {
                        diff_id: diff_id.to_string(),
                        source,
                    })?;
                let location = sent?;
                registry.upload_finish(path, &location, &digest).await?;
                let _ = tx.send(status("Pushed", Some(&id))).await;
                Descriptor {
                    media_type: manifest::DOCKER_LAYER_GZIP.into(),
                    digest,
                    size,
                    ..Default::default()
                }
            }
        };
        self.store().add_blob_digest(
            diff_id,
            &desc.digest,
            &desc.media_type,
            desc.size,
            repo_key,
        )?;
        Ok(desc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_of_a_layer_is_reproducible() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("layer.tar");
        std::fs::write(&src, vec![7u8; 1_000_000]).unwrap();
        let run = || {
            let (tx, mut rx) = mpsc::channel(64);
            let src = src.clone();
            let h = std::thread::spawn(move || gzip_stream(&src, tx).unwrap());
            let mut all = Vec::new();
            while let Some(b) = rx.blocking_recv() {
                all.extend_from_slice(&b);
            }
            (h.join().unwrap(), all)
        };
        let ((da, na), a) = run();
        let ((db, _), b) = run();
        assert_eq!(da, db, "the same layer gives the same digest");
        assert_eq!(a, b);
        assert_eq!(na as usize, a.len());
        assert_eq!(da, berth_registry::digest_of(&a));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 1_000_000);
    }
}
