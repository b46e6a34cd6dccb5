//! File sync. The receiving side (`moby.filesync.v1.FileSync/DiffCopy`): the client
//! lists a directory (one STAT packet per entry, in walk order, then an empty one),
//! berth asks for the files it wants (REQ by the entry's number), the client sends
//! their bytes (DATA, an empty DATA ending each), and FIN closes. What arrives is
//! written under the destination: paths are checked, and a file or directory is
//! only ever created inside a real directory the listing named, so no entry can
//! reach outside through a link another entry made. The destination may hold an
//! earlier transfer of the same directory: then only the files whose size, time
//! or mode changed are asked for, and what the listing no longer has goes. The sending side
//! (`moby.filesync.v1.FileSend/DiffCopy`, a build's local output) is the same
//! conversation the other way round, with berth listing and the client asking.

use crate::grpc::{Channel, Error as GrpcError};
use crate::proto::{Packet, PacketType, Stat};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Go's os.FileMode type bits, as fsutil sends them.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_TYPE: u32 =
    MODE_DIR | MODE_SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_STICKY: u32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    #[error("the client sent a path berth refuses: {0:?}")]
    Path(String),
    #[error("the client sent {0:?} under something that is not a directory it sent")]
    Parent(String),
    #[error("the client's file sync failed: {0}")]
    Remote(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to ask the client for: one of the directories its session exposes
/// (`context`, `dockerfile`), and which of its paths.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub dir_name: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow: Vec<String>,
}

/// What a transfer brought (`kept`: files an earlier transfer had right).
#[derive(Debug, Default)]
pub struct Received {
    pub files: usize,
    pub bytes: u64,
    pub kept: usize,
}

fn valid(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn unix_mode(m: u32) -> u32 {
    let mut mode = m & 0o777;
    if m & MODE_SETUID != 0 {
        mode |= 0o4000;
    }
    if m & MODE_SETGID != 0 {
        mode |= 0o2000;
    }
    if m & MODE_STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes whatever is at `p` (a directory with its contents), never following
/// a link.
fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    }
}

/// Removes what lies under `dest` and is not `listed` (paths relative to it).
fn remove_unlisted(dest: &Path, rel: &str, listed: &HashSet<String>) -> Result<(), Error> {
    let dir = if rel.is_empty() {
        dest.to_path_buf()
    } else {
        dest.join(rel)
    };
    for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
        let e = e.map_err(io_err(&dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let host = e.path();
        if !listed.contains(&r) {
            remove_any(&host).map_err(io_err(&host))?;
        } else if e.file_type().map_err(io_err(&host))?.is_dir() {
            remove_unlisted(dest, &r, listed)?;
        }
    }
    Ok(())
}

/// Whether the file at `host` is the one `st` describes (size, time, mode).
fn same_file(host: &Path, st: &Stat) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(host).is_ok_and(|m| {
        m.file_type().is_file()
            && m.size() as i64 == st.size
            && m.mtime() * 1_000_000_000 + m.mtime_nsec() == st.mod_time
            && m.mode() & 0o7777 == unix_mode(st.mode)
    })
}

/// Copies the client's directory (as `req` selects it) into `dest`, a directory
/// that is empty or holds an earlier transfer of the same directory.
pub async fn receive(channel: &Channel, req: &Request, dest: &Path) -> Result<Received, Error> {
    let mut md: Vec<(&str, String)> = vec![("dir-name", req.dir_name.clone())];
    for p in &req.include {
        md.push(("include-patterns", p.clone()));
    }
    for p in &req.exclude {
        md.push(("exclude-patterns", p.clone()));
    }
    for p in &req.follow {
        md.push(("followpaths", p.clone()));
    }
    let (tx, mut rx) = channel
        .bidi::<Packet, Packet>("/moby.filesync.v1.FileSync/DiffCopy", &md)
        .await?;
    let mut dirs: HashSet<String> = HashSet::new();
    let mut wanted: HashMap<u32, (PathBuf, Stat)> = HashMap::new();
    let mut open: HashMap<u32, std::fs::File> = HashMap::new();
    let mut out = Received::default();
    let mut next_id: u32 = 0;
    let mut listed = false;
    let mut listed_paths: HashSet<String> = HashSet::new();
    let send = |p: Packet| {
        let tx = tx.clone();
        async move { tx.send(p).await.map_err(|_| GrpcError::Closed) }
    };
    loop {
        if listed && wanted.is_empty() {
            send(Packet {
                r#type: PacketType::Fin as i32,
                ..Default::default()
            })
            .await?;
            break;
        }
        let Some(p) = rx.next().await? else {
            if listed && wanted.is_empty() {
                break;
            }
            return Err(GrpcError::Closed.into());
        };
        match PacketType::try_from(p.r#type).unwrap_or(PacketType::Err) {
            PacketType::Stat => {
                let Some(st) = p.stat else {
                    // The listing is complete: what it no longer has goes.
                    remove_unlisted(dest, "", &listed_paths)?;
                    listed = true;
                    continue;
                };
                let id = next_id;
                next_id += 1;
                let path = st.path.replace('\\', "/");
                if !valid(&path) {
                    return Err(Error::Path(path));
                }
                let parent = path.rsplit_once('/').map_or("", |(d, _)| d);
                if !parent.is_empty() && !dirs.contains(parent) {
                    return Err(Error::Parent(path));
                }
                let host = dest.join(&path);
                listed_paths.insert(path.clone());
                if st.mode & MODE_DIR != 0 {
                    let is_dir = std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir());
                    if !is_dir {
                        remove_any(&host).map_err(io_err(&host))?;
                        std::fs::create_dir(&host).map_err(io_err(&host))?;
                    }
                    std::fs::set_permissions(
                        &host,
                        std::os::unix::fs::PermissionsExt::from_mode(unix_mode(st.mode)),
                    )
                    .map_err(io_err(&host))?;
                    dirs.insert(path);
                } else if st.mode & MODE_SYMLINK != 0 {
                    let same = std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_symlink())
                        && std::fs::read_link(&host).is_ok_and(|t| t == Path::new(&st.linkname));
                    if !same {
                        remove_any(&host).map_err(io_err(&host))?;
                        std::os::unix::fs::symlink(&st.linkname, &host).map_err(io_err(&host))?;
                    }
                } else if st.mode & MODE_TYPE == 0 {
                    if same_file(&host, &st) {
                        out.kept += 1;
                        continue;
                    }
                    // A regular file: asked for now, written as it comes.
                    remove_any(&host).map_err(io_err(&host))?;
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&host)
                        .map_err(io_err(&host))?;
                    open.insert(id, f);
                    wanted.insert(id, (host, st));
                    send(Packet {
                        r#type: PacketType::Req as i32,
                        id,
                        ..Default::default()
                    })
                    .await?;
                } else {
                    // Devices, pipes and sockets are not part of a build context.
                    listed_paths.remove(&path);
                }
            }
            PacketType::Data => {
                let Some(f) = open.get_mut(&p.id) else {
                    continue;
                };
                if !p.data.is_empty() {
                    out.bytes += p.data.len() as u64;
                    let path = &wanted[&p.id].0;
                    f.write_all(&p.data).map_err(io_err(path))?;
                    continue;
                }
                // The file is complete: its mode and time as the client has them.
                open.remove(&p.id);
                if let Some((path, st)) = wanted.remove(&p.id) {
                    std::fs::set_permissions(
                        &path,
                        std::os::unix::fs::PermissionsExt::from_mode(unix_mode(st.mode)),
                    )
                    .map_err(io_err(&path))?;
                    let t = std::time::UNIX_EPOCH
                        + std::time::Duration::from_nanos(st.mod_time.max(0) as u64);
                    let _ = std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(t));
                    out.files += 1;
                }
            }
            PacketType::Fin => break,
            PacketType::Err => {
                return Err(Error::Remote(String::from_utf8_lossy(&p.data).into_owned()));
            }
            PacketType::Req => {}
        }
    }
    drop(tx);
    Ok(out)
}

/// The fsutil stat of a local entry, its path relative to the root (`rel`).
fn stat_of(rel: &str, m: &std::fs::Metadata, host: &Path) -> Option<Stat> {
    use std::os::unix::fs::MetadataExt;
    let ft = m.file_type();
    let mut mode = m.mode() & 0o777;
    for (bit, go) in [
        (0o4000, MODE_SETUID),
        (0o2000, MODE_SETGID),
        (0o1000, MODE_STICKY),
    ] {
        if m.mode() & bit != 0 {
            mode |= go;
        }
    }
    let mut linkname = String::new();
    if ft.is_dir() {
        mode |= MODE_DIR;
    } else if ft.is_symlink() {
        mode |= MODE_SYMLINK;
        linkname = std::fs::read_link(host)
            .ok()?
            .to_string_lossy()
            .into_owned();
    } else if !ft.is_file() {
        // Devices, pipes and sockets are not written to a client's directory.
        return None;
    }
    Some(Stat {
        path: rel.to_string(),
        mode,
        uid: m.uid(),
        gid: m.gid(),
        size: if ft.is_file() { m.size() as i64 } else { 0 },
        mod_time: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        linkname,
        ..Default::default()
    })
}

/// `root`'s entries in fsutil's walk order (names in byte order, a directory's
/// contents right after it); links are listed, never followed.
fn walk(root: &Path) -> Result<Vec<(Stat, PathBuf)>, Error> {
    fn visit(dir: &Path, rel: &str, out: &mut Vec<(Stat, PathBuf)>) -> Result<(), Error> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        names.sort_by(|a, b| {
            use std::os::unix::ffi::OsStrExt;
            a.as_bytes().cmp(b.as_bytes())
        });
        for n in names {
            let host = dir.join(&n);
            let m = std::fs::symlink_metadata(&host).map_err(io_err(&host))?;
            let name = n.to_string_lossy();
            let r = if rel.is_empty() {
                name.into_owned()
            } else {
                format!("{rel}/{name}")
            };
            if let Some(st) = stat_of(&r, &m, &host) {
                out.push((st, host.clone()));
                if m.file_type().is_dir() {
                    visit(&host, &r, out)?;
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    visit(root, "", &mut out)?;
    Ok(out)
}

/// Sends the directory `root` to the client's session (`method`, the service
/// that takes a build's local output), as much of it as the client asks for.
pub async fn send(
    channel: &Channel,
    method: &str,
    metadata: &[(&str, String)],
    root: &Path,
) -> Result<Received, Error> {
    const CHUNK: usize = 32 << 10;
    let entries = {
        let root = root.to_path_buf();
        tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(|_| GrpcError::Closed)??
    };
    let (tx, mut rx) = channel.bidi::<Packet, Packet>(method, metadata).await?;
    let hosts: Vec<(PathBuf, bool)> = entries
        .iter()
        .map(|(st, h)| (h.clone(), st.mode & MODE_TYPE == 0))
        .collect();
    // The listing goes out while the client's requests come in.
    let lister = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for (st, _) in entries {
                let p = Packet {
                    r#type: PacketType::Stat as i32,
                    stat: Some(st),
                    ..Default::default()
                };
                if tx.send(p).await.is_err() {
                    return;
                }
            }
            let _ = tx
                .send(Packet {
                    r#type: PacketType::Stat as i32,
                    ..Default::default()
                })
                .await;
        })
    };
    let mut out = Received::default();
    let result = loop {
        let p = match rx.next().await {
            Ok(Some(p)) => p,
            Ok(None) => break Err(GrpcError::Closed.into()),
            Err(e) => break Err(e.into()),
        };
        match PacketType::try_from(p.r#type).unwrap_or(PacketType::Err) {
            PacketType::Req => {
                let Some((host, true)) = hosts.get(p.id as usize) else {
                    break Err(Error::Remote(format!(
                        "asked for entry {} that is not a file",
                        p.id
                    )));
                };
                use std::os::unix::fs::OpenOptionsExt;
                use tokio::io::AsyncReadExt;
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(host)
                    .map_err(io_err(host))?;
                let mut f = tokio::fs::File::from_std(f);
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let n = f.read(&mut buf).await.map_err(io_err(host))?;
                    buf.truncate(n);
                    out.bytes += n as u64;
                    let p = Packet {
                        r#type: PacketType::Data as i32,
                        id: p.id,
                        data: buf,
                        ..Default::default()
                    };
                    tx.send(p).await.map_err(|_| GrpcError::Closed)?;
                    if n == 0 {
                        break;
                    }
                }
                out.files += 1;
            }
            PacketType::Fin => {
                let _ = tx
                    .send(Packet {
                        r#type: PacketType::Fin as i32,
                        ..Default::default()
                    })
                    .await;
                break Ok(out);
            }
            PacketType::Err => {
                break Err(Error::Remote(String::from_utf8_lossy(&p.data).into_owned()));
            }
            PacketType::Stat | PacketType::Data => {}
        }
    };
    lister.abort();
    drop(tx);
    // The client's answer ends once it has what it asked for.
    if result.is_ok() {
        while let Ok(Some(_)) = rx.next().await {}
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_output_is_listed_in_walk_order_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("b/c")).unwrap();
        std::fs::write(r.join("b/c/f"), "x").unwrap();
        std::fs::write(r.join("a"), "yy").unwrap();
        std::fs::write(r.join("b.txt"), "").unwrap();
        std::os::unix::fs::symlink("/etc", r.join("l")).unwrap();
        std::fs::set_permissions(
            r.join("a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        let w = walk(r).unwrap();
        let paths: Vec<&str> = w.iter().map(|(s, _)| s.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "b/c", "b/c/f", "b.txt", "l"]);
        assert_eq!(w[0].0.mode, 0o755 | MODE_SETUID);
        assert_eq!(w[0].0.size, 2);
        assert_eq!(w[1].0.mode & MODE_DIR, MODE_DIR);
        assert_eq!(w[5].0.mode & MODE_SYMLINK, MODE_SYMLINK);
        assert_eq!(w[5].0.linkname, "/etc");
    }

    #[test]
    fn paths_and_modes() {
        assert!(valid("a/b"));
        assert!(!valid("../a"));
        assert!(!valid("/a"));
        assert!(!valid("a//b"));
        assert_eq!(unix_mode(0o755 | MODE_DIR), 0o755);
        assert_eq!(unix_mode(0o755 | MODE_SETUID), 0o4755);
    }
}
