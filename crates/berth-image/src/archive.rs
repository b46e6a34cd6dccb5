//! Image archives: `docker load` (the docker-archive `docker save` writes, and OCI
//! image layouts), `docker save` (both formats in one tar, as Docker 25+ writes) and
//! `docker import` (a root filesystem tar made into a one-layer image).

use crate::{io_err, sha256_hex, Reference, Store, StoreError};
use berth_api::{ContainerConfig, HistoryEntry, ImageConfigBlob, RootFs};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The archive's files, spooled to a temporary directory because the manifest may
/// come after the layers in the stream.
struct Spool {
    dir: PathBuf,
    files: HashMap<String, PathBuf>,
    links: HashMap<String, String>,
}

fn clean(name: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

impl Spool {
    fn read<R: Read>(dir: PathBuf, r: R) -> Result<Spool, StoreError> {
        let mut s = Spool {
            dir,
            files: HashMap::new(),
            links: HashMap::new(),
        };
        let mut archive = tar::Archive::new(r);
        let bad = |e: io::Error| StoreError::BadArchive(format!("reading tar: {e}"));
        for (n, e) in archive.entries().map_err(bad)?.enumerate() {
            let mut e = e.map_err(bad)?;
            let name = clean(&String::from_utf8_lossy(&e.path_bytes()));
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let p = s.dir.join(n.to_string());
                    let mut f = fs::File::create(&p).map_err(io_err("creating", &p))?;
                    io::copy(&mut e, &mut f).map_err(bad)?;
                    s.files.insert(name, p);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = String::from_utf8_lossy(&e.link_name_bytes().unwrap_or_default())
                        .into_owned();
                    let resolved = if e.header().entry_type() == tar::EntryType::Symlink {
                        let base = name.rsplit_once('/').map_or("", |(d, _)| d);
                        clean(&format!("{base}/{target}"))
                    } else {
                        clean(&target)
                    };
                    s.links.insert(name, resolved);
                }
                _ => {}
            }
        }
        Ok(s)
    }

    fn path(&self, name: &str) -> Result<&Path, StoreError> {
        let mut n = clean(name);
        for _ in 0..16 {
            if let Some(p) = self.files.get(&n) {
                return Ok(p);
            }
            match self.links.get(&n) {
                Some(t) => n = t.clone(),
                None => break,
            }
        }
        Err(StoreError::BadArchive(format!(
            "{name} is missing from the archive"
        )))
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let p = self.path(name)?;
        fs::read(p).map_err(io_err("reading", p))
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, StoreError> {
        serde_json::from_slice(&self.bytes(name)?)
            .map_err(|e| StoreError::BadArchive(format!("{name}: {e}")))
    }

    /// A blob's bytes, checked against the digest its name carries
    /// (`blobs/sha256/<hex>`, or a docker-archive's `<hex>.json`).
    fn verified(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let data = self.bytes(name)?;
        let base = name.rsplit('/').next().unwrap_or(name);
        let hex = base.strip_suffix(".json").unwrap_or(base);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let actual = sha256_hex(&data);
            if actual != hex {
                return Err(StoreError::BadArchive(format!(
                    "{name} has digest sha256:{actual}, not the one its name says"
                )));
            }
        }
        Ok(data)
    }
}

/// Opens a layer file, decompressing it when it is gzip.
fn layer_reader(path: &Path) -> Result<Box<dyn Read>, StoreError> {
    let f = fs::File::open(path).map_err(io_err("opening", path))?;
    let mut r = BufReader::new(f);
    let head = r.fill_buf().map_err(io_err("reading", path))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::GzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

fn blob_name(digest: &str) -> Result<String, StoreError> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| StoreError::BadArchive(format!("bad digest {digest:?}")))?;
    if alg != "sha256" || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::BadArchive(format!("bad digest {digest:?}")));
    }
    Ok(format!("blobs/sha256/{hex}"))
}

/// One image found in an archive: its config file, layer files and names.
struct Found {
    config: String,
    layers: Vec<String>,
    tags: Vec<String>,
}

fn oci_images(spool: &Spool) -> Result<Vec<Found>, StoreError> {
    let index: serde_json::Value = spool.json("index.json")?;
    let mut out = Vec::new();
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| StoreError::BadArchive("index.json has no manifests".into()))?;
    for m in manifests {
        let digest = m["digest"].as_str().unwrap_or_default();
        let name = blob_name(digest)?;
        let manifest: serde_json::Value = serde_json::from_slice(&spool.verified(&name)?)
            .map_err(|e| StoreError::BadArchive(format!("{name}: {e}")))?;
        if manifest.get("manifests").is_some() {
            return Err(StoreError::BadArchive(format!(
                "{digest} is a nested index; multi-platform archives are not supported yet"
            )));
        }
        let config = blob_name(manifest["config"]["digest"].as_str().unwrap_or_default())?;
        let layers = manifest["layers"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .map(|l| blob_name(l["digest"].as_str().unwrap_or_default()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let ann = &m["annotations"];
        let tags = ann["io.containerd.image.name"]
            .as_str()
            .or(ann["org.opencontainers.image.ref.name"]
                .as_str()
                .filter(|r| r.contains(':') || r.contains('/')))
            .map(|n| vec![n.to_string()])
            .unwrap_or_default();
        out.push(Found {
            config,
            layers,
            tags,
        });
    }
    Ok(out)
}

/// One outcome of a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// A remark Docker prints as it is (a tag moved off an older image).
    Note(String),
    /// An image, with the tags it was loaded under (none: only its ID names it).
    Image { id: String, tags: Vec<String> },
}

impl Loaded {
    /// The lines `docker load` prints for this outcome.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Loaded::Note(n) => vec![n.clone()],
            Loaded::Image { id, tags } if tags.is_empty() => vec![format!("Loaded image ID: {id}")],
            Loaded::Image { tags, .. } => {
                tags.iter().map(|t| format!("Loaded image: {t}")).collect()
            }
        }
    }
}

impl Store {
    /// `docker load`: what was loaded, in order ([`Loaded::lines`] are what Docker
    /// prints).
    pub fn load<R: Read>(&self, reader: R) -> Result<Vec<Loaded>, StoreError> {
        let _w = self.lock_writer();
        let dir = self.tmp_dir("load")?;
        let result = (|| {
            let spool = Spool::read(dir.clone(), reader)?;
            let found = if spool.files.contains_key("manifest.json") {
                let entries: Vec<ManifestEntry> = spool.json("manifest.json")?;
                entries
                    .into_iter()
                    .map(|e| Found {
                        config: e.config,
                        layers: e.layers,
                        tags: e.repo_tags.unwrap_or_default(),
                    })
                    .collect()
            } else if spool.files.contains_key("index.json") {
                oci_images(&spool)?
            } else {
                return Err(StoreError::BadArchive(
                    "neither manifest.json nor index.json found: not a docker-archive or OCI image layout".into(),
                ));
            };
            let mut messages = Vec::new();
            for f in found {
                let config_bytes = spool.verified(&f.config)?;
                let config: ImageConfigBlob =
                    serde_json::from_slice(&config_bytes).map_err(|e| {
                        StoreError::BadArchive(format!("image config {}: {e}", f.config))
                    })?;
                if config.rootfs.diff_ids.len() != f.layers.len() {
                    return Err(StoreError::BadArchive(format!(
                        "image config {} lists {} layers but the manifest has {}",
                        f.config,
                        config.rootfs.diff_ids.len(),
                        f.layers.len()
                    )));
                }
                let mut layers = Vec::new();
                for (i, (file, diff_id)) in f.layers.iter().zip(&config.rootfs.diff_ids).enumerate()
                {
                    let reader = layer_reader(spool.path(file)?)?;
                    layers.push(self.commit_layer(i, reader, Some(diff_id))?);
                }
                let tags = f
                    .tags
                    .iter()
                    .map(|t| Reference::parse(t).map(|r| r.tagged().unwrap_or_else(|| t.clone())))
                    .collect::<Result<Vec<_>, _>>()?;
                let (id, notes) = self.insert_image(&config_bytes, &layers, &tags)?;
                messages.extend(notes.into_iter().map(Loaded::Note));
                messages.push(Loaded::Image { id, tags });
            }
            Ok(messages)
        })();
        let _ = fs::remove_dir_all(&dir);
        if result.is_err() {
            drop(_w);
            let _ = self.collect_garbage();
        }
        result
    }

    /// `docker commit`: `base` plus one layer (a tar of the container's changes),
    /// with `config` as the new image's configuration. Returns the image ID.
    #[allow(clippy::too_many_arguments)]
    pub fn commit<R: Read>(
        &self,
        base: &crate::Image,
        layer: R,
        config: ContainerConfig,
        tag: Option<&str>,
        comment: &str,
        author: &str,
        created_by: &str,
        created: &str,
    ) -> Result<String, StoreError> {
        let tag = tag
            .map(Reference::parse)
            .transpose()?
            .and_then(|r| r.tagged());
        let _w = self.lock_writer();
        let new = self.commit_layer(base.layers.len(), layer, None)?;
        let mut blob = base.config.clone();
        blob.created = Some(created.to_string());
        blob.author = (!author.is_empty()).then(|| author.to_string());
        blob.config = Some(config);
        blob.rootfs.diff_ids.push(new.0.clone());
        blob.history.push(HistoryEntry {
            created: Some(created.to_string()),
            created_by: Some(created_by.to_string()),
            author: (!author.is_empty()).then(|| author.to_string()),
            comment: (!comment.is_empty()).then(|| comment.to_string()),
            empty_layer: false,
        });
        let bytes = serde_json::to_vec(&blob).expect("config serialises");
        let mut layers = base.layers.clone();
        layers.push(new);
        let tags: Vec<String> = tag.into_iter().collect();
        let (id, _) = self.insert_image(&bytes, &layers, &tags)?;
        Ok(id)
    }

    /// `docker import`: a root filesystem tar (plain or gzip) as a one-layer image.
    pub fn import<R: Read>(
        &self,
        reader: R,
        config: ContainerConfig,
        tag: Option<&str>,
        message: &str,
        created: &str,
    ) -> Result<String, StoreError> {
        let tag = tag
            .map(Reference::parse)
            .transpose()?
            .and_then(|r| r.tagged());
        let _w = self.lock_writer();
        let mut r = BufReader::new(reader);
        let head = r
            .fill_buf()
            .map_err(|e| StoreError::BadArchive(format!("reading: {e}")))?;
        let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(r))
        } else {
            Box::new(r)
        };
        let layer = self.commit_layer(0, reader, None)?;
        let blob = ImageConfigBlob {
            architecture: host_arch().into(),
            os: "linux".into(),
            variant: None,
            created: Some(created.to_string()),
            author: None,
            config: Some(config),
            container_config: None,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![layer.0.clone()],
            },
            history: vec![HistoryEntry {
                created: Some(created.to_string()),
                created_by: None,
                author: None,
                comment: Some(if message.is_empty() {
                    "Imported from -".into()
                } else {
                    message.into()
                }),
                empty_layer: false,
            }],
            other: Default::default(),
        };
        let bytes = serde_json::to_vec(&blob).expect("config serialises");
        let tags: Vec<String> = tag.into_iter().collect();
        let (id, _) = self.insert_image(&bytes, &[layer], &tags)?;
        Ok(id)
    }

    /// `docker save`: writes the named images as one tar holding both a
    /// docker-archive manifest.json and an OCI image layout.
    pub fn save<W: Write>(&self, names: &[String], w: W) -> Result<(), StoreError> {
        let mut images = Vec::new();
        for n in names {
            let image = self.resolve(n)?;
            let tag = Reference::parse(n)
                .ok()
                .and_then(|r| r.tagged())
                .filter(|t| image.tags.contains(t));
            images.push((image, tag));
        }
        let mut tar = tar::Builder::new(w);
        let wr = |e: io::Error| StoreError::Io {
            what: "writing archive",
            path: PathBuf::from("-"),
            source: e,
        };
        let put = |tar: &mut tar::Builder<W>, name: &str, data: &[u8]| -> Result<(), StoreError> {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, data).map_err(wr)
        };
        let mut written = std::collections::HashSet::new();
        let mut manifest = Vec::new();
        let mut index = Vec::new();
        for (image, tag) in &images {
            let config_hex = crate::hex_of(&image.id).to_string();
            let mut layer_names = Vec::new();
            let mut layer_descs = Vec::new();
            for (d, _) in &image.layers {
                let name = format!("blobs/sha256/{}", crate::hex_of(d));
                let path = self.layer_dir(d).join("layer.tar");
                let size = fs::metadata(&path).map_err(io_err("reading", &path))?.len();
                if written.insert(name.clone()) {
                    let mut h = tar::Header::new_ustar();
                    h.set_size(size);
                    h.set_mode(0o644);
                    h.set_mtime(0);
                    h.set_entry_type(tar::EntryType::Regular);
                    let f = fs::File::open(&path).map_err(io_err("opening", &path))?;
                    tar.append_data(&mut h, &name, f).map_err(wr)?;
                }
                layer_descs.push(json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": d,
                    "size": size,
                }));
                layer_names.push(name);
            }
            let config_name = format!("blobs/sha256/{config_hex}");
            if written.insert(config_name.clone()) {
                put(&mut tar, &config_name, &image.config_bytes)?;
            }
            let oci_manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": image.id,
                    "size": image.config_bytes.len(),
                },
                "layers": layer_descs,
            }))
            .expect("manifest serialises");
            let mdigest = sha256_hex(&oci_manifest);
            let mname = format!("blobs/sha256/{mdigest}");
            if written.insert(mname.clone()) {
                put(&mut tar, &mname, &oci_manifest)?;
            }
            let tags: Vec<String> = match tag {
                Some(t) => vec![t.clone()],
                None => image.tags.clone(),
            };
            let mut desc = json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{mdigest}"),
                "size": oci_manifest.len(),
            });
            if let Some(t) = tags.first() {
                let full = if t.contains('/') {
                    format!("docker.io/{t}")
                } else {
                    format!("docker.io/library/{t}")
                };
                desc["annotations"] = json!({
                    "io.containerd.image.name": full,
                    "org.opencontainers.image.ref.name": t.rsplit_once(':').map_or("latest", |(_, tag)| tag),
                });
            }
            index.push(desc);
            manifest.push(json!({
                "Config": config_name,
                "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) },
                "Layers": layer_names,
            }));
        }
        put(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let idx = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index,
        }))
        .expect("index serialises");
        put(&mut tar, "index.json", &idx)?;
        put(
            &mut tar,
            "manifest.json",
            &serde_json::to_vec(&manifest).expect("manifest serialises"),
        )?;
        tar.into_inner().map_err(wr)?.flush().map_err(wr)?;
        Ok(())
    }
}

/// The GOARCH name of this machine, as image configs spell it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
