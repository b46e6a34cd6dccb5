//! Contexts kept between builds, for clients that can send only what changed
//! (`berth build`): the client sends the list of its context's entries with their
//! sizes, modes and times, learns which files the daemon lacks, and sends those
//! alone with the build. Each context lives in `<data-root>/build/contexts/<key>`
//! with the list it was last brought up to; a build of a context holds its lock
//! from the update to the end of the build. The checksums COPY computes are cached
//! by inode, so an unchanged file is not read again.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Contexts kept at most (the least recently used go first).
const KEEP: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: String,
    pub mode: u32,
    #[serde(default)]
    pub size: u64,
    /// Modification time, in nanoseconds.
    #[serde(default)]
    pub mtime: i64,
    #[serde(default)]
    pub target: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid context key {0:?}: 16 to 64 hexadecimal digits")]
    Key(String),
    #[error("invalid context path {0:?}")]
    Path(String),
    #[error("the context {0} changed since its list was sent: send it again")]
    Stale(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A list sent: its generation, entries, and the digest of the stored list it
/// was compared with.
type Pending = (String, Vec<Entry>, String);

/// A list claimed for a build, and the state it was compared with.
#[derive(Debug, Clone)]
pub struct Claim {
    entries: Vec<Entry>,
    base: String,
}

pub struct Contexts {
    dir: PathBuf,
    /// Lists sent and not yet built with: key -> (generation, entries, the
    /// digest of the stored list they were compared with).
    pending: Mutex<HashMap<String, Pending>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl Contexts {
    pub fn new(dir: PathBuf) -> Contexts {
        Contexts {
            dir,
            pending: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn check_key(key: &str) -> Result<(), Error> {
        if (16..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(Error::Key(key.to_string()))
        }
    }

    fn manifest_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    pub fn context_dir(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    fn stored_digest(&self, key: &str) -> String {
        let b = std::fs::read(self.manifest_path(key)).unwrap_or_default();
        berth_image::sha256_hex(&b)
    }

    fn stored(&self, key: &str) -> Vec<Entry> {
        std::fs::read(self.manifest_path(key))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The files (and links) of `entries` the daemon's copy lacks or has
    /// otherwise; remembers the list for the build that follows.
    pub fn sync(&self, key: &str, entries: Vec<Entry>) -> Result<(Vec<String>, String), Error> {
        Self::check_key(key)?;
        if let Some(bad) = entries.iter().find(|e| !valid_path(&e.path)) {
            return Err(Error::Path(bad.path.clone()));
        }
        let dir = self.context_dir(key);
        let old: HashMap<String, Entry> = if dir.is_dir() {
            self.stored(key)
                .into_iter()
                .map(|e| (e.path.clone(), e))
                .collect()
        } else {
            HashMap::new()
        };
        let need = entries
            .iter()
            .filter(|e| e.kind != "dir" && old.get(&e.path) != Some(e))
            .map(|e| e.path.clone())
            .collect();
        let generation = format!("{:016x}", rand::random::<u64>());
        let base = self.stored_digest(key);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), (generation.clone(), entries, base));
        Ok((need, generation))
    }

    /// Takes the list sent with `generation` for the build that brings it: a
    /// conflict when another list was sent since (the client sends again).
    pub fn claim(&self, key: &str, generation: &str) -> Result<Claim, Error> {
        Self::check_key(key)?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.get(key) {
            Some((g, _, _)) if g == generation => {
                let (_, entries, base) = pending.remove(key).expect("present");
                Ok(Claim { entries, base })
            }
            _ => Err(Error::Stale(key.to_string())),
        }
    }

    /// Brings the context up to the list claimed: what the list no longer has is
    /// removed, `files` (a tar of what was asked) unpacked. Returns the directory,
    /// locked until the guard goes.
    pub async fn update<R: std::io::Read + Send + 'static>(
        self: &Arc<Self>,
        key: &str,
        claim: Claim,
        files: R,
    ) -> Result<(PathBuf, tokio::sync::OwnedMutexGuard<()>), Error> {
        Self::check_key(key)?;
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        // Another build changed the context since the list was compared.
        if self.stored_digest(key) != claim.base {
            return Err(Error::Stale(key.to_string()));
        }
        let entries = claim.entries;
        let me = self.clone();
        let k = key.to_string();
        let dir = tokio::task::spawn_blocking(move || me.apply(&k, entries, files))
            .await
            .map_err(|e| Error::Io {
                what: "updating",
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })??;
        // Old contexts go meanwhile, not in this build's time.
        let me = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || me.evict(&key));
        Ok((dir, guard))
    }

    fn apply<R: std::io::Read>(
        &self,
        key: &str,
        entries: Vec<Entry>,
        files: R,
    ) -> Result<PathBuf, Error> {
        let dir = self.context_dir(key);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let keep: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let mut gone: Vec<Entry> = self
            .stored(key)
            .into_iter()
            .filter(|e| {
                !keep.contains(e.path.as_str())
                    || entries.iter().any(|n| n.path == e.path && n.kind != e.kind)
            })
            .collect();
        // Deepest first; each removed beneath the context, never through a link.
        gone.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
        for e in &gone {
            remove_beneath(&dir, &e.path);
        }
        let mut a = tar::Archive::new(files);
        a.set_preserve_permissions(true);
        a.set_preserve_mtime(true);
        a.set_overwrite(true);
        a.set_unpack_xattrs(false);
        a.unpack(&dir).map_err(io("unpacking into", &dir))?;
        for e in entries.iter().filter(|e| e.kind == "dir") {
            let p = berth_build::rootfs::scoped(&dir, &e.path, false);
            if !p.is_dir() {
                std::fs::create_dir_all(&p).map_err(io("creating", &p))?;
            }
            let _ = std::fs::set_permissions(
                &p,
                std::os::unix::fs::PermissionsExt::from_mode(e.mode & 0o7777),
            );
        }
        let m = self.manifest_path(key);
        std::fs::write(&m, serde_json::to_vec(&entries).expect("serialises"))
            .map_err(io("writing", &m))?;
        Ok(dir)
    }

    /// The copy of a BuildKit client's context kept under its session's shared
    /// key, locked until the guard goes; `None` without a key, or while another
    /// build holds it (that build then receives the whole context afresh).
    pub fn session_dir(
        self: &Arc<Self>,
        shared_key: &str,
    ) -> Option<(PathBuf, tokio::sync::OwnedMutexGuard<()>)> {
        if shared_key.is_empty() {
            return None;
        }
        let key =
            berth_image::sha256_hex(format!("session:{shared_key}").as_bytes())[..32].to_string();
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = lock.try_lock_owned().ok()?;
        let dir = self.context_dir(&key);
        std::fs::create_dir_all(&dir).ok()?;
        // Its list (none: the session's file sync compares) marks it used, for
        // eviction and prune.
        std::fs::write(self.manifest_path(&key), b"[]").ok()?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.evict(&key));
        Some((dir, guard))
    }

    /// Keeps the `KEEP` most recently used contexts.
    fn evict(&self, current: &str) {
        let mut lists: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(".json")?.to_string();
                Some((e.metadata().ok()?.modified().ok()?, key))
            })
            .collect();
        lists.sort();
        lists.reverse();
        for (_, key) in lists.into_iter().skip(KEEP) {
            if key == current {
                continue;
            }
            let busy = self
                .locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .is_some_and(|l| l.try_lock().is_err());
            if !busy {
                self.forget(&key);
            }
        }
    }

    fn forget(&self, key: &str) {
        let _ = std::fs::remove_file(self.manifest_path(key));
        let _ = std::fs::remove_dir_all(self.context_dir(key));
    }

    /// `docker builder prune`: every context no build holds. Returns the bytes.
    pub fn prune(&self) -> (Vec<String>, i64) {
        let mut keys = Vec::new();
        let mut freed = 0;
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json") else {
                continue;
            };
            let busy = self
                .locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .is_some_and(|l| l.try_lock().is_err());
            if busy {
                continue;
            }
            freed += crate::daemon::paths::dir_size(&self.context_dir(key)) as i64;
            self.forget(key);
            keys.push(key.to_string());
        }
        (keys, freed)
    }
}

/// Removes `rel` under `root`, every component opened beneath it without
/// following a link (a directory with all it holds).
fn remove_beneath(root: &Path, rel: &str) {
    use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
    let Ok(rootfd) = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let (parent, name) = rel.rsplit_once('/').unwrap_or((".", rel));
    let Ok(dir) = rustix::fs::openat2(
        &rootfd,
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return;
    };
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::Directory =>
        {
            // The directory opened, by its real path (no link on the way, as
            // resolved above); remove_dir_all does not follow links inside.
            if let Ok(real) = std::fs::read_link(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&dir)
            )) {
                let _ = std::fs::remove_dir_all(real.join(name));
            }
        }
        Ok(_) => {
            let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
        }
        Err(_) => {}
    }
}
