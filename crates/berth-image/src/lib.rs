//! berth's store: content-addressed layers unpacked once and shared by every image
//! that has them, image configs keyed by their sha256 (the image ID), tags, and the
//! container records, all indexed in one transactional SQLite database.
//!
//! On disk, under the data root:
//! - `db.sqlite`: the metadata (see [`meta`]).
//! - `layers/<diff-id hex>/diff/`: the unpacked layer (overlayfs lower dir).
//! - `layers/<diff-id hex>/layer.tar`: the layer as loaded, for `docker save`.
//! - `tmp/`: work in progress; emptied when the store opens.
#![forbid(unsafe_code)]

mod archive;
pub mod buildcache;
pub mod extract;
pub mod meta;
pub mod reference;

pub use archive::{host_arch, Loaded};
use berth_api::{ErrorKind, ImageConfigBlob, ImageDeleteItem};
use meta::ContainerRow;
pub use reference::{Reference, ReferenceError};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("invalid image archive: {0}")]
    BadArchive(String),
    #[error("layer {index} of the image")]
    Layer {
        index: usize,
        #[source]
        source: extract::ExtractError,
    },
    #[error(
        "layer {index} of the image has digest {actual}, but the image config says {expected}"
    )]
    DiffIdMismatch {
        index: usize,
        expected: String,
        actual: String,
    },
    #[error("metadata database")]
    Db(#[from] rusqlite::Error),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NoSuchImage(_) => ErrorKind::NotFound,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Reference(_)
            | StoreError::BadArchive(_)
            | StoreError::Layer { .. }
            | StoreError::DiffIdMismatch { .. } => ErrorKind::InvalidArgument,
            StoreError::Db(_) | StoreError::Io { .. } => ErrorKind::Internal,
        }
    }
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// An image as the store knows it.
#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfigBlob,
    pub tags: Vec<String>,
    /// `repo@sha256:...` of the manifests it was pulled or pushed as.
    pub repo_digests: Vec<String>,
    /// Diff ids and unpacked sizes, bottom layer first.
    pub layers: Vec<(String, i64)>,
}

impl Image {
    pub fn size(&self) -> i64 {
        self.layers.iter().map(|(_, s)| s).sum()
    }
}

pub struct Store {
    root: PathBuf,
    db: Mutex<Connection>,
    /// Held by every operation that adds or removes layer directories, so that the
    /// collection of orphans never races a load in progress.
    writer: Mutex<()>,
    /// Layers keep overlayfs whiteouts (the overlay2 driver), or Docker's `.wh.`
    /// files (vfs).
    overlay_whiteouts: bool,
}

/// A layer unpacked into a temporary directory, not yet in the store (removed when
/// dropped uncommitted).
#[derive(Debug)]
pub struct StagedLayer {
    tmp: PathBuf,
    pub diff_id: String,
    pub size: i64,
}

/// A layer of a pull: staged by it, or found in the store.
#[derive(Debug)]
pub enum PulledLayer {
    Staged(StagedLayer),
    Existing(String, i64),
    /// The same layer as an earlier one of this image (empty layers repeat).
    Again(String),
}

impl StagedLayer {
    fn commit_locked(mut self, store: &Store) -> Result<(String, i64), StoreError> {
        let dest = store.layer_dir(&self.diff_id);
        if !dest.exists() {
            fs::rename(&self.tmp, &dest).map_err(io_err("committing layer", &dest))?;
            self.tmp = PathBuf::new();
        }
        Ok((self.diff_id.clone(), self.size))
    }

    /// Moves the layer into the store (under the caller's writer lock).
    pub(crate) fn commit(self, store: &Store) -> Result<(String, i64), StoreError> {
        self.commit_locked(store)
    }
}

impl Drop for StagedLayer {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Removes every tag in `tags`, noting each as untagged.
fn untag_all(
    tx: &rusqlite::Transaction<'_>,
    tags: &[String],
    out: &mut Vec<ImageDeleteItem>,
) -> Result<(), StoreError> {
    for t in tags {
        tx.execute("DELETE FROM tags WHERE name = ?1", [t])?;
        out.push(ImageDeleteItem {
            untagged: Some(t.clone()),
            deleted: None,
        });
    }
    Ok(())
}

/// The overlay lower directories of a stack of layers (bottom first), topmost
/// first, each layer once.
pub fn lower_dirs_of(store: &Store, layers: &[(String, i64)]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    layers
        .iter()
        .rev()
        .filter(|(d, _)| seen.insert(d.clone()))
        .map(|(d, _)| store.layer_dir(d).join("diff"))
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A reader that hashes what passes through it and copies it to a file.
pub(crate) struct Tee<R> {
    inner: R,
    hasher: Sha256,
    copy: Option<io::BufWriter<fs::File>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(f) = &mut self.copy {
            f.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

impl Store {
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Self::open_with(root, true)
    }

    /// Opens the store with layers in overlayfs's whiteout format or, with
    /// `overlay_whiteouts` false, in Docker's (`.wh.` files).
    pub fn open_with(root: &Path, overlay_whiteouts: bool) -> Result<Store, StoreError> {
        for d in ["layers", "tmp"] {
            fs::create_dir_all(root.join(d)).map_err(io_err("creating", &root.join(d)))?;
        }
        let db = meta::open(&root.join("db.sqlite"))?;
        let store = Store {
            root: root.to_path_buf(),
            db: Mutex::new(db),
            writer: Mutex::new(()),
            overlay_whiteouts,
        };
        store.collect_garbage()?;
        Ok(store)
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(hex_of(diff_id))
    }

    /// The overlay lower directories of an image, topmost first.
    ///
    /// A layer that comes again lower in the stack is left out there: overlayfs
    /// refuses a directory twice (ELOOP), and the copy below adds nothing the one
    /// above does not already show.
    pub fn lower_dirs(&self, image: &Image) -> Vec<PathBuf> {
        lower_dirs_of(self, &image.layers)
    }

    /// A new directory under the store's `tmp/` (emptied when the store opens).
    pub fn tmp_dir(&self, prefix: &str) -> Result<PathBuf, StoreError> {
        let p = self
            .root
            .join("tmp")
            .join(format!("{prefix}-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        Ok(p)
    }

    /// Removes work left in tmp/ and layer directories no row names: what a crash
    /// between writing a file and committing its row leaves behind.
    fn collect_garbage(&self) -> Result<(), StoreError> {
        let _w = self.lock_writer();
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp)
            .map_err(io_err("reading", &tmp))?
            .flatten()
        {
            let _ = fs::remove_dir_all(e.path());
        }
        let known: std::collections::HashSet<String> = {
            let db = self.db();
            let mut st = db.prepare("SELECT diff_id FROM layers")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| r.map(|d| hex_of(&d).to_string()))
                .collect::<Result<_, _>>()?
        };
        let layers = self.root.join("layers");
        for e in fs::read_dir(&layers)
            .map_err(io_err("reading", &layers))?
            .flatten()
        {
            if !known.contains(e.file_name().to_string_lossy().as_ref()) {
                tracing::info!(layer = %e.path().display(), "removing unreferenced layer");
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(())
    }

    /// Unpacks a layer unless the store has it; verifies its digest against
    /// `expected` when given. Returns the diff id and unpacked size.
    pub(crate) fn commit_layer<R: Read>(
        &self,
        index: usize,
        reader: R,
        expected: Option<&str>,
    ) -> Result<(String, i64), StoreError> {
        if let Some(d) = expected {
            if let Some(size) = self.layer_size(d)? {
                // Already stored: the content given must still be that layer,
                // checked by its digest (nothing of it is kept).
                let mut reader = reader;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = reader.read(&mut buf).map_err(|source| StoreError::Layer {
                        index,
                        source: extract::ExtractError::Read(source),
                    })?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                if actual != d {
                    return Err(StoreError::DiffIdMismatch {
                        index,
                        expected: d.to_string(),
                        actual,
                    });
                }
                return Ok((d.to_string(), size));
            }
        }
        let staged = self.stage_layer(index, reader, expected)?;
        staged.commit(self)
    }

    /// Records that image `id` is `repo@digest` on a registry (RepoDigests).
    pub fn add_repo_digest(&self, id: &str, repo_digest: &str) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)",
            params![repo_digest, id],
        )?;
        Ok(())
    }

    /// Records that layer `diff_id` is the blob `digest` (compressed as
    /// `media_type`, `size` bytes) in repository `repo` (`host/path`): a later push
    /// can check for it, or mount it, without compressing again.
    pub fn add_blob_digest(
        &self,
        diff_id: &str,
        digest: &str,
        media_type: &str,
        size: i64,
        repo: &str,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT OR REPLACE INTO blob_digests (diff_id, digest, media_type, size, repo) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![diff_id, digest, media_type, size, repo],
        )?;
        Ok(())
    }

    /// The blobs known for layer `diff_id`: (digest, media type, size, repo).
    pub fn blob_digests(
        &self,
        diff_id: &str,
    ) -> Result<Vec<(String, String, i64, String)>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT digest, media_type, size, repo FROM blob_digests WHERE diff_id = ?1",
        )?;
        let rows = st.query_map([diff_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The unpacked size of a layer the store has.
    pub fn layer_size(&self, diff_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT size FROM layers WHERE diff_id = ?1",
                [diff_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Unpacks a layer into a private temporary directory, checking its diff id
    /// against `expected` when given. Nothing is in the store until
    /// [`Store::commit_pulled`] (or [`StagedLayer::commit`]) moves it there.
    pub fn stage_layer<R: Read>(
        &self,
        index: usize,
        reader: R,
        expected: Option<&str>,
    ) -> Result<StagedLayer, StoreError> {
        let tmp = self.tmp_dir("layer")?;
        // Removes the directory on every early return.
        let mut staged = StagedLayer {
            tmp: tmp.clone(),
            diff_id: String::new(),
            size: 0,
        };
        let diff = tmp.join("diff");
        fs::create_dir(&diff).map_err(io_err("creating", &diff))?;
        let tar_path = tmp.join("layer.tar");
        let copy = fs::File::create(&tar_path).map_err(io_err("creating", &tar_path))?;
        let mut tee = Tee {
            inner: reader,
            hasher: Sha256::new(),
            copy: Some(io::BufWriter::with_capacity(1 << 20, copy)),
        };
        let size = extract::unpack(&mut tee, &diff, self.overlay_whiteouts)
            .map_err(|source| StoreError::Layer { index, source })?;
        // The tar's end may come before the stream's: the rest (padding) is part of
        // the layer's bytes too.
        std::io::copy(&mut tee, &mut std::io::sink())
            .map_err(io_err("reading layer", &tar_path))?;
        let actual = format!("sha256:{}", hex::encode(tee.hasher.finalize()));
        if let Some(expected) = expected {
            if expected != actual {
                return Err(StoreError::DiffIdMismatch {
                    index,
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        staged.diff_id = actual;
        staged.size = size as i64;
        Ok(staged)
    }

    /// Records a pulled image: its staged layers move into the store and the image
    /// and its tags are recorded, all under the store's writer lock, so that no
    /// removal can take a layer in between. `existing` are layers the pull found in
    /// the store already; if one went meanwhile, the pull fails and can be retried.
    pub fn commit_pulled(
        &self,
        config_bytes: &[u8],
        layers: Vec<PulledLayer>,
        tags: &[String],
    ) -> Result<(String, Vec<String>), StoreError> {
        let _w = self.lock_writer();
        let mut list = Vec::new();
        for l in layers {
            match l {
                PulledLayer::Staged(s) => list.push(s.commit_locked(self)?),
                PulledLayer::Again(d) => {
                    let size = list
                        .iter()
                        .find(|(x, _)| *x == d)
                        .map(|(_, s)| *s)
                        .ok_or_else(|| {
                            StoreError::BadArchive(format!(
                                "layer {d} repeats a layer not seen before"
                            ))
                        })?;
                    list.push((d, size));
                }
                PulledLayer::Existing(d, size) => {
                    if !self.layer_dir(&d).exists() {
                        return Err(StoreError::BadArchive(format!(
                            "layer {d} was removed while the image was pulled; pull again"
                        )));
                    }
                    list.push((d, size));
                }
            }
        }
        self.insert_image(config_bytes, &list, tags)
    }

    /// Records an image whose layers are committed, and points `tags` at it.
    /// Returns one message per tag moved away from another image.
    pub(crate) fn insert_image(
        &self,
        config_bytes: &[u8],
        layers: &[(String, i64)],
        tags: &[String],
    ) -> Result<(String, Vec<String>), StoreError> {
        let id = format!("sha256:{}", sha256_hex(config_bytes));
        let mut db = self.db();
        let tx = db.transaction()?;
        let mut notes = Vec::new();
        for (d, size) in layers {
            tx.execute(
                "INSERT OR IGNORE INTO layers (diff_id, size) VALUES (?1, ?2)",
                params![d, size],
            )?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO images (id, config, loaded_at) VALUES (?1, ?2, ?3)",
            params![id, config_bytes, now],
        )?;
        if inserted == 1 {
            for (i, (d, _)) in layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers (image_id, idx, diff_id) VALUES (?1, ?2, ?3)",
                    params![id, i as i64, d],
                )?;
            }
        }
        for t in tags {
            let old: Option<String> = tx
                .query_row("SELECT image_id FROM tags WHERE name = ?1", [t], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(old) = old.filter(|o| *o != id) {
                notes.push(format!(
                    "The image {t} already exists, renaming the old one with ID {old} to empty string"
                ));
            }
            tx.execute(
                "INSERT OR REPLACE INTO tags (name, image_id) VALUES (?1, ?2)",
                params![t, id],
            )?;
        }
        tx.commit()?;
        Ok((id, notes))
    }

    fn image_by_id(&self, db: &Connection, id: &str) -> Result<Option<Image>, StoreError> {
        let Some(config_bytes) = meta::image_config(db, id)? else {
            return Ok(None);
        };
        let config: ImageConfigBlob = serde_json::from_slice(&config_bytes)
            .map_err(|e| StoreError::BadArchive(format!("stored config of {id}: {e}")))?;
        Ok(Some(Image {
            id: id.to_string(),
            config,
            config_bytes,
            tags: meta::image_tags(db, id)?,
            repo_digests: meta::image_repo_digests(db, id)?,
            layers: meta::image_layers(db, id)?,
        }))
    }

    /// Finds an image by `name[:tag]`, full id, or unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<Image, StoreError> {
        let db = self.db();
        if let Ok(r) = Reference::parse(name) {
            if let Some(tagged) = r.tagged() {
                let id: Option<String> = db
                    .query_row(
                        "SELECT image_id FROM tags WHERE name = ?1",
                        [&tagged],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = id {
                    return self
                        .image_by_id(&db, &id)?
                        .ok_or_else(|| StoreError::NoSuchImage(name.into()));
                }
            }
            if let Some(d) = &r.digest {
                let id: Option<String> = db
                    .query_row(
                        "SELECT image_id FROM repo_digests WHERE name = ?1",
                        [format!("{}@{d}", r.repo)],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = id {
                    return self
                        .image_by_id(&db, &id)?
                        .ok_or_else(|| StoreError::NoSuchImage(name.into()));
                }
            }
        }
        let hex = hex_of(name);
        if !hex.is_empty()
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            let mut st = db.prepare_cached("SELECT id FROM images WHERE id LIKE ?1 LIMIT 2")?;
            let ids: Vec<String> = st
                .query_map([format!("sha256:{hex}%")], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if ids.len() == 1 {
                return self
                    .image_by_id(&db, &ids[0])?
                    .ok_or_else(|| StoreError::NoSuchImage(name.into()));
            }
        }
        // Neither an image ID nor a valid name: Docker's 400, not a 404.
        let looks_like_id = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !looks_like_id {
            Reference::parse(name)?;
        }
        Err(StoreError::NoSuchImage(name.to_string()))
    }

    pub fn images(&self) -> Result<Vec<Image>, StoreError> {
        let db = self.db();
        let ids: Vec<String> = {
            let mut st = db.prepare("SELECT id FROM images ORDER BY loaded_at DESC, id")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(i) = self.image_by_id(&db, &id)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// `docker tag`: points `repo[:tag]` at the image `source` names.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), StoreError> {
        let image = self.resolve(source)?;
        let r = Reference::parse(target)?;
        let tagged = r.tagged().ok_or(ReferenceError::Invalid)?;
        self.db().execute(
            "INSERT OR REPLACE INTO tags (name, image_id) VALUES (?1, ?2)",
            params![tagged, image.id],
        )?;
        Ok(())
    }

    /// `docker rmi`. `running` tells whether a container (by id) is running.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        running: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<ImageDeleteItem>, StoreError> {
        let _w = self.lock_writer();
        let image = self.resolve(name)?;
        let short = |id: &str| hex_of(id).chars().take(12).collect::<String>();
        // A name (a tag, or a repository digest) rather than an ID: Docker removes
        // that reference only, and the image with it only when it was the last.
        let parsed = Reference::parse(name).ok();
        let by_tag = parsed
            .as_ref()
            .and_then(|r| r.tagged())
            .filter(|t| image.tags.contains(t));
        let by_digest = parsed
            .as_ref()
            .and_then(|r| r.digest.as_ref().map(|d| format!("{}@{d}", r.repo)))
            .filter(|d| image.repo_digests.contains(d));
        let users = meta::container_users(&self.db(), &image.id)?;
        let mut out = Vec::new();
        let refs = image.tags.len() + image.repo_digests.len();

        if by_tag.is_some() || by_digest.is_some() {
            let named = by_tag.clone().or(by_digest.clone()).expect("one of them");
            let repo = parsed.as_ref().map(|r| r.repo.clone()).unwrap_or_default();
            if refs == 1 && !users.is_empty() && (!force || users.iter().any(|u| running(u))) {
                let u = &users[0];
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                    if name.contains(':') || name.contains('@') { name } else { repo.as_str() },
                    short(u),
                    short(&image.id)
                )));
            }
            let mut db = self.db();
            let tx = db.transaction()?;
            let mut removed = 1;
            if let Some(tag) = &by_tag {
                tx.execute("DELETE FROM tags WHERE name = ?1", [tag])?;
                out.push(ImageDeleteItem {
                    untagged: Some(tag.clone()),
                    deleted: None,
                });
                // The repository's last tag gone: its digest references go too.
                let same_repo =
                    |t: &String| Reference::parse(t).ok().is_some_and(|r| r.repo == repo);
                if !image.tags.iter().any(|t| t != tag && same_repo(t)) {
                    for d in image.repo_digests.iter().filter(|d| same_repo(d)) {
                        tx.execute("DELETE FROM repo_digests WHERE name = ?1", [d])?;
                        out.push(ImageDeleteItem {
                            untagged: Some(d.clone()),
                            deleted: None,
                        });
                        removed += 1;
                    }
                }
            } else {
                tx.execute("DELETE FROM repo_digests WHERE name = ?1", [&named])?;
                out.push(ImageDeleteItem {
                    untagged: Some(named.clone()),
                    deleted: None,
                });
            }
            tx.commit()?;
            drop(db);
            // Other names keep the image; so do containers (forced).
            if refs > removed || !users.is_empty() {
                return Ok(out);
            }
            self.delete_image(&image, &[], &mut out)?;
            return Ok(out);
        } else {
            if let Some(u) = users.iter().find(|u| running(u)) {
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    short(&image.id),
                    short(u)
                )));
            }
            if !force {
                if image.tags.len() > 1 {
                    return Err(StoreError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short(&image.id)
                    )));
                }
                if let Some(u) = users.first() {
                    return Err(StoreError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                        short(&image.id),
                        short(u)
                    )));
                }
            } else if !users.is_empty() {
                // Stopped containers still need the layers: a forced removal only
                // takes the names away, and the image stays until they are gone.
                let mut db = self.db();
                let tx = db.transaction()?;
                untag_all(&tx, &image.tags, &mut out)?;
                tx.commit()?;
                return Ok(out);
            }
        }

        self.delete_image(&image, &image.tags, &mut out)?;
        Ok(out)
    }

    /// Deletes an image, untagging `tags` in the same transaction, with the layers
    /// no other image has (the caller holds the writer lock and has checked that
    /// no container holds it).
    fn delete_image(
        &self,
        image: &Image,
        tags: &[String],
        out: &mut Vec<ImageDeleteItem>,
    ) -> Result<(), StoreError> {
        let removed_layers = {
            let mut db = self.db();
            let tx = db.transaction()?;
            untag_all(&tx, tags, out)?;
            tx.execute("DELETE FROM images WHERE id = ?1", [&image.id])?;
            let removed = meta::delete_unused_layers(&tx)?;
            tx.commit()?;
            removed
        };
        out.push(ImageDeleteItem {
            untagged: None,
            deleted: Some(image.id.clone()),
        });
        for d in removed_layers {
            let _ = fs::remove_dir_all(self.layer_dir(&d));
            out.push(ImageDeleteItem {
                untagged: None,
                deleted: Some(d),
            });
        }
        Ok(())
    }

    // Container records.

    pub fn container_put(&self, row: &ContainerRow) -> Result<(), StoreError> {
        let r = self.db().execute(
            "INSERT INTO containers (id, name, image_id, data) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
            params![row.id, row.name, row.image_id, row.data],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(StoreError::Conflict(format!(
                    "Conflict. The container name \"{}\" is already in use. You have to remove (or rename) that container to be able to reuse that name.",
                    row.name
                )))
            }
            r => r.map(|_| ()).map_err(StoreError::from),
        }
    }

    pub fn container_delete(&self, id: &str) -> Result<(), StoreError> {
        self.db()
            .execute("DELETE FROM containers WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn containers(&self) -> Result<Vec<ContainerRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT id, name, image_id, data FROM containers")?;
        let rows = st.query_map([], |r| {
            Ok(ContainerRow {
                id: r.get(0)?,
                name: r.get(1)?,
                image_id: r.get(2)?,
                data: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
