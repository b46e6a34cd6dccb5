//! `docker push`: each layer is checked on the registry first (HEAD) and skipped
//! when there, mounted from another repository of the same registry when the store
//! knows one that has it, and otherwise gzip-compressed into a temporary file and
//! uploaded (in one request when small, in chunks when not); then the config and a
//! Docker schema 2 manifest. Progress goes out as Docker's JSON messages.

use super::pull::Puller;
use crate::error::{ApiError, ApiResult};
use berth_registry::auth::Credentials;
use berth_registry::manifest::{self, Descriptor, ImageManifest};
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::Digest;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Blobs up to this size go in one request; bigger ones in chunks of this size.
const CHUNK: usize = 16 << 20;

fn line(v: Value) -> Bytes {
    let mut l = serde_json::to_vec(&v).expect("serialises");
    l.push(b'\n');
    Bytes::from(l)
}

fn status(s: &str, id: Option<&str>) -> Bytes {
    let mut v = json!({ "status": s });
    if let Some(id) = id {
        v["id"] = json!(id);
        v["progressDetail"] = json!({});
    }
    line(v)
}

/// Compresses a layer tar into `dst`, returning its digest and size.
fn gzip_layer(src: &std::path::Path, dst: &std::path::Path) -> std::io::Result<(String, i64)> {
    struct Hashing<W: Write> {
        w: W,
        h: sha2::Sha256,
        n: u64,
    }
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.w.write(buf)?;
            self.h.update(&buf[..n]);
            self.n += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.w.flush()
        }
    }
    let out = Hashing {
        w: std::io::BufWriter::new(std::fs::File::create(dst)?),
        h: sha2::Sha256::new(),
        n: 0,
    };
    // No name and no time in the header: the same layer always gives the same blob.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(src)?, &mut gz)?;
    let mut out = gz.finish()?;
    out.flush()?;
    Ok((
        format!("sha256:{}", hex::encode(out.h.finalize())),
        out.n as i64,
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
        let registry = self.registry(&domain, creds);
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
        let mut descs = Vec::new();
        for (diff_id, _) in &image.layers {
            let id = diff_id.trim_start_matches("sha256:")[..12].to_string();
            let known = self.store().blob_digests(diff_id)?;
            // Already in this repository?
            let mut done = None;
            for (digest, media, size, _) in known.iter().filter(|k| k.3 == repo_key) {
                if registry.has_blob(&path, digest).await? {
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
            // In another repository of the same registry: mount it.
            if done.is_none() {
                let prefix = format!("{}/", registry.host);
                for (digest, media, size, repo) in known
                    .iter()
                    .filter(|k| k.3 != repo_key && k.3.starts_with(&prefix))
                {
                    let from = &repo[prefix.len()..];
                    if registry.mount_blob(&path, digest, from).await? {
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
                    let src = self.store().layer_dir(diff_id).join("layer.tar");
                    let scratch = self.store().tmp_dir("push")?;
                    let tmp = scratch.join("layer.tar.gz");
                    let (t2, s2) = (tmp.clone(), src.clone());
                    let (digest, size) = tokio::task::spawn_blocking(move || gzip_layer(&s2, &t2))
                        .await
                        .map_err(|e| ApiError::internal(format!("compress task: {e}")))?
                        .map_err(|e| {
                            let _ = std::fs::remove_dir_all(&scratch);
                            ApiError::internal(format!("compressing layer {diff_id}: {e}"))
                        })?;
                    let result = async {
                        if registry.has_blob(&path, &digest).await? {
                            let _ = tx.send(status("Layer already exists", Some(&id))).await;
                            return Ok::<_, ApiError>(());
                        }
                        let _ = tx.send(status("Pushing", Some(&id))).await;
                        let data = tokio::fs::read(&tmp).await.map_err(|e| {
                            ApiError::internal(format!("reading {}: {e}", tmp.display()))
                        })?;
                        let chunk = if data.len() > CHUNK { CHUNK } else { 0 };
                        registry
                            .upload_blob(&path, &digest, Bytes::from(data), chunk)
                            .await?;
                        let _ = tx.send(status("Pushed", Some(&id))).await;
                        Ok(())
                    }
                    .await;
                    let _ = std::fs::remove_dir_all(&scratch);
                    result?;
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
                &repo_key,
            )?;
            descs.push(desc);
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
                .upload_blob(&path, &image.id, config.clone(), 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_of_a_layer_is_reproducible() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("layer.tar");
        std::fs::write(&src, vec![7u8; 100_000]).unwrap();
        let a = gzip_layer(&src, &d.path().join("a.gz")).unwrap();
        let b = gzip_layer(&src, &d.path().join("b.gz")).unwrap();
        assert_eq!(a, b, "the same layer gives the same digest");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(d.path().join("a.gz")).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 100_000);
        assert_eq!(
            a.1 as u64,
            std::fs::metadata(d.path().join("a.gz")).unwrap().len()
        );
    }
}
