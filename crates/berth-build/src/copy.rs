//! COPY and ADD: which files a source list selects (globs, directories, the
//! context's `.dockerignore`, `--exclude`), where each lands, the checksum of their
//! content that keys the cache (modes, owners, bytes; never mtimes), and the layer
//! tar that holds them.

use crate::ignore::Ignore;
use crate::rootfs::{clean_abs, scoped, Layers};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("failed to compute cache key: {0:?}: not found")]
    NotFound(String),
    #[error("When using {0} with more than one source file, the destination must be a directory and end with a /")]
    NotADirectory(&'static str),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CopyError + 'a {
    move |source| CopyError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
enum Content {
    Dir,
    File(PathBuf),
    Symlink(String),
    Data(Vec<u8>),
    /// A tar archive ADD unpacks at this destination.
    Archive(PathBuf),
}

#[derive(Debug, Clone)]
struct Entry {
    content: Content,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

/// What one COPY/ADD puts where, and its checksum.
#[derive(Debug)]
pub struct Selection {
    /// By destination path (absolute, cleaned), in order.
    entries: BTreeMap<String, Entry>,
    pub checksum: String,
}

pub struct Request<'a> {
    pub instruction: &'static str,
    /// The host directory the sources are read from (the context, or a view of a
    /// stage's or image's filesystem).
    pub root: &'a Path,
    pub srcs: &'a [String],
    /// Here-documents as sources: (name, content).
    pub inline: &'a [(String, Vec<u8>)],
    /// Absolute, a trailing `/` kept.
    pub dest: &'a str,
    pub dest_is_dir: bool,
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<u32>,
    pub parents: bool,
    pub exclude: &'a Ignore,
    /// The context's `.dockerignore` (not for other stages).
    pub ignore: Option<&'a Ignore>,
    /// ADD: local tar archives are unpacked.
    pub unpack: bool,
}

/// Whether a source names a git repository (Docker's rules: a `.git` path, the
/// `git://` and `git@` forms).
pub fn is_git_url(url: &str) -> bool {
    let base = url.split('#').next().unwrap_or(url);
    url.starts_with("git://")
        || url.starts_with("git@")
        || base.ends_with(".git")
        || base.ends_with(".git/")
}

/// Whether an ADD source is remote.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || is_git_url(s)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn glob_segment(pattern: &str, name: &str) -> bool {
    let re = crate::ignore::Ignore::parse(pattern)
        .ok()
        .filter(|i| !i.is_empty());
    match re {
        Some(i) => i.excluded(name) && !name.contains('/'),
        None => pattern == name,
    }
}

/// The relative paths a source pattern selects under `root`.
fn expand_glob(root: &Path, pattern: &str) -> Vec<String> {
    let mut found = vec![String::new()];
    for seg in pattern.split('/').filter(|s| !s.is_empty() && *s != ".") {
        let mut next = Vec::new();
        for base in &found {
            if has_glob(seg) {
                let dir = scoped(root, base, true);
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_segment(seg, n))
                    .collect();
                names.sort();
                for n in names {
                    next.push(if base.is_empty() {
                        n
                    } else {
                        format!("{base}/{n}")
                    });
                }
            } else {
                next.push(if base.is_empty() {
                    seg.to_string()
                } else {
                    format!("{base}/{seg}")
                });
            }
        }
        found = next;
    }
    found
}

fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    if n >= 2 && head[..2] == [0x1f, 0x8b] {
        return true;
    }
    n >= 262 && &head[257..262] == b"ustar"
}

/// Checksums of files by inode, kept while the file's size and times stay: a
/// context kept between builds is not read again when unchanged (a change to a
/// file always moves its ctime, which nobody can set).
type Stamp = (u64, i64, i64, i64, i64);
type Checksums = std::sync::Mutex<std::collections::HashMap<(u64, u64), (Stamp, String)>>;

fn checksums() -> &'static Checksums {
    static C: std::sync::OnceLock<Checksums> = std::sync::OnceLock::new();
    C.get_or_init(Default::default)
}

fn hash_file(path: &Path) -> Result<String, CopyError> {
    let mut f = fs::File::open(path).map_err(io_err("opening", path))?;
    let m = f.metadata().map_err(io_err("reading", path))?;
    let id = (m.dev(), m.ino());
    let stamp = (
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    );
    if let Some((s, h)) = checksums()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
    {
        if *s == stamp {
            return Ok(h.clone());
        }
    }
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).map_err(io_err("reading", path))?;
    let hex = hex::encode(h.finalize());
    let mut c = checksums().lock().unwrap_or_else(|p| p.into_inner());
    if c.len() > 200_000 {
        c.clear();
    }
    c.insert(id, (stamp, hex.clone()));
    Ok(hex)
}

impl Selection {
    pub fn select(req: &Request<'_>) -> Result<Selection, CopyError> {
        let mut sel = Selection {
            entries: BTreeMap::new(),
            checksum: String::new(),
        };
        let many = req.srcs.len() + req.inline.len() > 1;
        let mut matched: Vec<(String, PathBuf, fs::Metadata)> = Vec::new();
        for src in req.srcs {
            let rels = if has_glob(src) {
                expand_glob(req.root, src)
            } else {
                vec![src.clone()]
            };
            let mut any = false;
            for rel in rels {
                let clean = clean_abs(&rel);
                let host = scoped(req.root, &clean, true);
                let Ok(meta) = fs::symlink_metadata(&host) else {
                    continue;
                };
                if let Some(ig) = req.ignore {
                    if clean != "/" && ig.excluded(&clean) && !meta.is_dir() {
                        continue;
                    }
                }
                any = true;
                matched.push((clean, host, meta));
            }
            if !any {
                return Err(CopyError::NotFound(clean_abs(src)));
            }
        }
        let to_dir = req.dest.ends_with('/')
            || req.dest_is_dir
            || many
            || matched.len() > 1
            || matched.iter().any(|(_, _, m)| m.is_dir());
        if (many || matched.len() > 1) && !req.dest.ends_with('/') && !req.dest_is_dir {
            return Err(CopyError::NotADirectory(req.instruction));
        }
        let dest = clean_abs(req.dest);
        let (uid, gid) = req.owner.unwrap_or((0, 0));
        let join = |a: &str, b: &str| clean_abs(&format!("{a}/{b}"));
        if to_dir {
            sel.put(
                &dest,
                Entry {
                    content: Content::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: 0,
                },
            );
        }
        for (name, data) in req.inline {
            let target = if to_dir {
                join(&dest, name)
            } else {
                dest.clone()
            };
            sel.put(
                &target,
                Entry {
                    content: Content::Data(data.clone()),
                    mode: req.chmod.unwrap_or(0o644),
                    uid,
                    gid,
                    mtime: 0,
                },
            );
        }
        for (rel, host, meta) in matched {
            let base = rel.rsplit('/').next().unwrap_or("").to_string();
            if meta.is_dir() {
                let under = if req.parents {
                    join(&dest, &rel)
                } else {
                    dest.clone()
                };
                sel.walk(req, &host, &rel, &under, "")?;
                continue;
            }
            let target = if req.parents {
                join(&dest, &rel)
            } else if to_dir {
                join(&dest, &base)
            } else {
                dest.clone()
            };
            if req.exclude.excluded(&base) {
                continue;
            }
            let e = sel.entry(req, &host, &meta)?;
            let e = match e.content {
                Content::File(ref p) if req.unpack && is_archive(p) => Entry {
                    content: Content::Archive(p.clone()),
                    ..e
                },
                _ => e,
            };
            let target = if matches!(e.content, Content::Archive(_)) {
                dest.clone()
            } else {
                target
            };
            sel.put(&target, e);
        }
        sel.checksum = sel.digest()?;
        Ok(sel)
    }

    fn put(&mut self, path: &str, e: Entry) {
        self.entries.insert(path.to_string(), e);
    }

    fn entry(
        &self,
        req: &Request<'_>,
        host: &Path,
        meta: &fs::Metadata,
    ) -> Result<Entry, CopyError> {
        let (uid, gid) = req.owner.unwrap_or((0, 0));
        let ft = meta.file_type();
        let content = if ft.is_symlink() {
            Content::Symlink(
                fs::read_link(host)
                    .map_err(io_err("reading", host))?
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if ft.is_dir() {
            Content::Dir
        } else {
            Content::File(host.to_path_buf())
        };
        let mode = match (&content, req.chmod) {
            (Content::Symlink(_), _) => 0o777,
            (_, Some(m)) => m,
            _ => meta.permissions().mode() & 0o7777,
        };
        Ok(Entry {
            content,
            mode,
            uid,
            gid,
            mtime: meta.mtime().max(0) as u64,
        })
    }

    /// A directory's contents (not the directory itself) under `under`; `rel` is
    /// its path in the source root, `within` its path inside the source copied.
    fn walk(
        &mut self,
        req: &Request<'_>,
        host: &Path,
        rel: &str,
        under: &str,
        within: &str,
    ) -> Result<(), CopyError> {
        let mut names: Vec<String> = fs::read_dir(host)
            .map_err(io_err("reading", host))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let meta = fs::symlink_metadata(host).map_err(io_err("reading", host))?;
        let mut dir = self.entry(req, host, &meta)?;
        if req.chmod.is_none() {
            dir.mode = meta.permissions().mode() & 0o7777;
        }
        if under != "/" {
            self.put(under, dir);
        }
        for n in names {
            let child_rel = format!("{}/{n}", rel.trim_end_matches('/'));
            let path = host.join(&n);
            let meta = fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
            let r = child_rel.trim_start_matches('/');
            // `--exclude` patterns are relative to the source being copied.
            let inner = if within.is_empty() {
                n.clone()
            } else {
                format!("{within}/{n}")
            };
            let ignored = req.ignore.is_some_and(|i| i.excluded(r)) || req.exclude.excluded(&inner);
            let target = clean_abs(&format!("{under}/{n}"));
            if meta.is_dir() {
                if ignored
                    && !req.ignore.is_some_and(|i| i.may_include_under(r))
                    && !req.exclude.may_include_under(&inner)
                {
                    continue;
                }
                self.walk(req, &path, &child_rel, &target, &inner)?;
                continue;
            }
            if ignored || !(meta.is_file() || meta.file_type().is_symlink()) {
                continue;
            }
            let e = self.entry(req, &path, &meta)?;
            self.put(&target, e);
        }
        Ok(())
    }

    fn digest(&self) -> Result<String, CopyError> {
        let mut h = Sha256::new();
        for (path, e) in &self.entries {
            let content = match &e.content {
                Content::Dir => "dir".to_string(),
                Content::File(p) => format!("file:{}", hash_file(p)?),
                Content::Archive(p) => format!("archive:{}", hash_file(p)?),
                Content::Symlink(t) => format!("symlink:{t}"),
                Content::Data(d) => format!("data:{}", hex::encode(Sha256::digest(d))),
            };
            writeln!(h, "{path}\0{:o}\0{}\0{}\0{content}", e.mode, e.uid, e.gid).expect("hashing");
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }

    /// Writes the layer: the selected entries, with the parents they need (those
    /// the image has keep their owner and mode).
    pub fn write_tar<W: Write>(&self, parent: &Layers<'_>, out: W) -> Result<W, CopyError> {
        let mut b = tar::Builder::new(out);
        b.mode(tar::HeaderMode::Complete);
        let werr = |e: io::Error| CopyError::Io {
            what: "writing the layer",
            path: PathBuf::from("-"),
            source: e,
        };
        let mut written: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (path, e) in &self.entries {
            // Parents first.
            let mut parents = Vec::new();
            let mut p = path.as_str();
            while let Some((head, _)) = p.rsplit_once('/') {
                if head.is_empty() {
                    break;
                }
                parents.push(head.to_string());
                p = head;
            }
            for d in parents.into_iter().rev() {
                if written.contains(&d) || self.entries.contains_key(&d) {
                    continue;
                }
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                match parent.lstat(&d) {
                    Some((_, m)) if m.is_dir() => {
                        h.set_mode(m.permissions().mode() & 0o7777);
                        h.set_uid(m.uid() as u64);
                        h.set_gid(m.gid() as u64);
                        h.set_mtime(m.mtime().max(0) as u64);
                    }
                    _ => {
                        h.set_mode(0o755);
                        h.set_mtime(0);
                    }
                }
                h.set_size(0);
                b.append_data(&mut h, format!("{}/", &d[1..]), io::empty())
                    .map_err(werr)?;
                written.insert(d);
            }
            if path == "/" {
                continue;
            }
            let name = &path[1..];
            let mut h = tar::Header::new_gnu();
            h.set_mode(e.mode);
            h.set_uid(e.uid as u64);
            h.set_gid(e.gid as u64);
            h.set_mtime(e.mtime);
            match &e.content {
                Content::Dir => {
                    // An existing directory keeps its owner and mode unless asked.
                    if let Some((_, m)) = parent.lstat(path).filter(|(_, m)| m.is_dir()) {
                        if e.mtime == 0 {
                            h.set_mode(m.permissions().mode() & 0o7777);
                            h.set_uid(m.uid() as u64);
                            h.set_gid(m.gid() as u64);
                        }
                    }
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{name}/"), io::empty())
                        .map_err(werr)?;
                }
                Content::File(p) => {
                    let f = fs::File::open(p).map_err(io_err("opening", p))?;
                    let len = f.metadata().map_err(io_err("reading", p))?.len();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(len);
                    b.append_data(&mut h, name, f.take(len)).map_err(werr)?;
                }
                Content::Data(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, name, &d[..]).map_err(werr)?;
                }
                Content::Symlink(t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, name, t).map_err(werr)?;
                }
                Content::Archive(p) => {
                    append_archive(&mut b, p, path, e).map_err(werr)?;
                }
            }
            written.insert(path.clone());
        }
        b.into_inner().map_err(werr)
    }
}

/// ADD of a local archive: its entries, under `dest`.
fn append_archive<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    dest: &str,
    e: &Entry,
) -> io::Result<()> {
    let f = io::BufReader::new(fs::File::open(path)?);
    let mut f = f;
    let gz = {
        use std::io::BufRead;
        f.fill_buf()?.starts_with(&[0x1f, 0x8b])
    };
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut a = tar::Archive::new(reader);
    for entry in a.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.to_string_lossy().into_owned();
        let target = clean_abs(&format!("{dest}/{rel}"));
        if target == "/" {
            continue;
        }
        let mut h = entry.header().clone();
        if let Some((uid, gid)) = Some((e.uid, e.gid)).filter(|o| *o != (0, 0)) {
            h.set_uid(uid as u64);
            h.set_gid(gid as u64);
        }
        let name = target[1..].to_string();
        match h.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let link = entry
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let link = if h.entry_type() == tar::EntryType::Link {
                    clean_abs(&format!("{dest}/{link}"))[1..].to_string()
                } else {
                    link
                };
                b.append_link(&mut h, &name, link)?;
            }
            tar::EntryType::Directory => b.append_data(&mut h, format!("{name}/"), io::empty())?,
            _ => b.append_data(&mut h, &name, &mut entry)?,
        }
    }
    Ok(())
}
