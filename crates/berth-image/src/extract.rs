//! Unpacking a layer tar into a directory without ever writing outside it.
//!
//! Every entry is created relative to a directory fd opened with
//! `openat2(RESOLVE_BENEATH)`: a `..` that climbs out, an absolute symlink, or a
//! symlink that leads out makes the kernel refuse the lookup, and the layer fails
//! with an error naming the entry. Docker whiteouts become overlayfs whiteouts.

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags, CWD,
};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use tar::EntryType;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// The extended attribute that makes an overlayfs directory opaque: the
/// `trusted.` one as root on the host; in a user namespace (a rootless
/// berthd), where `trusted.` attributes cannot be set, the `user.` one that
/// overlayfs reads when mounted with `userxattr`.
pub fn opaque_xattr() -> &'static str {
    static NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        if in_user_namespace() {
            "user.overlay.opaque"
        } else {
            "trusted.overlay.opaque"
        }
    })
}

/// Whether this process is in a user namespace other than the host's (as
/// `berth_runtime::in_user_namespace`, which this crate does not depend on).
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("reading the layer archive")]
    Read(#[source] io::Error),
    #[error("layer entry {entry:?} points outside the layer")]
    Escape { entry: String },
    #[error("layer entry {entry:?} has an invalid path")]
    BadPath { entry: String },
    #[error("layer entry {entry:?}: device number {major}:{minor} is out of range")]
    DeviceRange {
        entry: String,
        major: u64,
        minor: u64,
    },
    #[error("layer entry {entry:?}: {step}")]
    Io {
        entry: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Path components of an entry name, after dropping `.`, empty parts and a leading
/// `/` (a layer is always relative to its root). `..` may only go back down a path
/// the name itself went up.
fn components(name: &str) -> Result<Vec<String>, ExtractError> {
    let mut out: Vec<String> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(ExtractError::Escape {
                        entry: name.to_string(),
                    });
                }
            }
            p => out.push(p.to_string()),
        }
    }
    Ok(out)
}

struct Unpacker {
    root: OwnedFd,
    /// Layer tars carry Docker whiteouts; a `docker cp` tar is taken literally.
    whiteouts: bool,
    /// Directory mtimes, applied at the end (adding children changes them).
    dir_times: HashMap<Vec<String>, (i64, i64)>,
    size: u64,
    /// The owners written for an entry's (uid, gid); None: the entry's own.
    owner: Option<Owner>,
}

/// Maps a tar entry's (uid, gid) to the IDs written on disk.
pub type Owner = Box<dyn Fn(u32, u32) -> (u32, u32) + Send>;

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

impl Unpacker {
    fn err<'a>(entry: &'a str, step: &'static str) -> impl Fn(Errno) -> ExtractError + 'a {
        move |e| match e {
            Errno::XDEV => ExtractError::Escape {
                entry: entry.to_string(),
            },
            e => ExtractError::Io {
                entry: entry.to_string(),
                step,
                source: e.into(),
            },
        }
    }

    /// Opens the directory `comps` beneath the root, creating what is missing.
    fn dir(&self, entry: &str, comps: &[String]) -> Result<OwnedFd, ExtractError> {
        let open = |c: &[String]| {
            let p = if c.is_empty() {
                ".".to_string()
            } else {
                c.join("/")
            };
            rustix::fs::openat2(
                &self.root,
                p.as_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            )
        };
        match open(comps) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(Self::err(entry, "opening parent directory")(e)),
        }
        let mut parent = open(&[]).map_err(Self::err(entry, "opening layer root"))?;
        for i in 0..comps.len() {
            match open(&comps[..=i]) {
                Ok(fd) => parent = fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(
                        &parent,
                        comps[i].as_str(),
                        Mode::from_raw_mode(0o755),
                    ) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Self::err(entry, "creating parent directory")(e)),
                    }
                    parent =
                        open(&comps[..=i]).map_err(Self::err(entry, "opening parent directory"))?;
                }
                Err(e) => return Err(Self::err(entry, "opening parent directory")(e)),
            }
        }
        Ok(parent)
    }

    /// Removes whatever is at `name` in `parent`, so that an entry replaces it.
    fn clear(parent: &OwnedFd, name: &str, keep_dir: bool) -> Result<(), Errno> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if keep_dir {
                    Ok(())
                } else {
                    Err(Errno::ISDIR)
                }
            }
            Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty()),
        }
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let raw = e.path_bytes();
        let entry = String::from_utf8(raw.to_vec()).map_err(|_| ExtractError::BadPath {
            entry: String::from_utf8_lossy(&raw).into_owned(),
        })?;
        let comps = components(&entry)?;
        let Some((name, parents)) = comps.split_last() else {
            return Ok(()); // the root itself: nothing to create
        };
        let name = name.as_str();
        let parent = self.dir(&entry, parents)?;
        let h = e.header().clone();
        let kind = h.entry_type();
        let err = |step| Self::err(&entry, step);

        if self.whiteouts && name == OPAQUE {
            let dir = rustix::fs::openat2(
                &parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            )
            .map_err(err("opening opaque directory"))?;
            return rustix::fs::fsetxattr(&dir, opaque_xattr(), b"y", XattrFlags::empty())
                .map_err(err("marking directory opaque"));
        }
        if let Some(hidden) = name
            .strip_prefix(WHITEOUT_PREFIX)
            .filter(|_| self.whiteouts)
        {
            Self::clear(&parent, hidden, false).map_err(err("replacing whiteout target"))?;
            return rustix::fs::mknodat(
                &parent,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                0,
            )
            .map_err(err("creating whiteout"));
        }

        let mode = Mode::from_raw_mode(
            h.mode().map_err(|e| ExtractError::Io {
                entry: entry.clone(),
                step: "reading mode",
                source: e,
            })? & 0o7777,
        );
        let mut file: Option<File> = None;
        match kind {
            EntryType::Directory => {
                Self::clear(&parent, name, true).map_err(err("replacing entry"))?;
                match rustix::fs::mkdirat(&parent, name, mode) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(err("creating directory")(e)),
                }
            }
            EntryType::Regular | EntryType::Continuous => {
                Self::clear(&parent, name, false).map_err(err("replacing entry"))?;
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(err("creating file"))?;
                let mut f = File::from(fd);
                self.size += io::copy(&mut e, &mut f).map_err(|source| ExtractError::Io {
                    entry: entry.clone(),
                    step: "writing file",
                    source,
                })?;
                file = Some(f);
            }
            EntryType::Symlink => {
                let target = link_target(&e, &entry)?;
                Self::clear(&parent, name, false).map_err(err("replacing entry"))?;
                // A symlink may point anywhere: it is only ever resolved inside the
                // container, and this extractor never follows one out (RESOLVE_BENEATH).
                rustix::fs::symlinkat(target.as_str(), &parent, name)
                    .map_err(err("creating symlink"))?;
            }
            EntryType::Link => {
                let target = link_target(&e, &entry)?;
                let tcomps = components(&target).map_err(|_| ExtractError::Escape {
                    entry: entry.clone(),
                })?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(ExtractError::BadPath { entry });
                };
                let tparent = self.dir(&entry, tparents)?;
                Self::clear(&parent, name, false).map_err(err("replacing entry"))?;
                rustix::fs::linkat(&tparent, tname.as_str(), &parent, name, AtFlags::empty())
                    .map_err(err("creating hard link"))?;
                return Ok(());
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (major, minor) = (
                    h.device_major().ok().flatten().unwrap_or(0) as u64,
                    h.device_minor().ok().flatten().unwrap_or(0) as u64,
                );
                if major >= 4096 || minor >= (1 << 20) {
                    return Err(ExtractError::DeviceRange {
                        entry,
                        major,
                        minor,
                    });
                }
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                Self::clear(&parent, name, false).map_err(err("replacing entry"))?;
                match rustix::fs::mknodat(
                    &parent,
                    name,
                    ft,
                    mode,
                    rustix::fs::makedev(major as u32, minor as u32),
                ) {
                    Ok(()) => {}
                    // In a user namespace (a rootless berthd) no device node can
                    // be made: the entry is skipped, as moby does there.
                    Err(rustix::io::Errno::PERM) if kind != EntryType::Fifo => return Ok(()),
                    Err(e) => return Err(err("creating device node")(e)),
                }
            }
            // Global pax headers and the like carry no file.
            _ => return Ok(()),
        }

        let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let (uid, gid) = match &self.owner {
            Some(f) => f(uid, gid),
            None => (uid, gid),
        };
        rustix::fs::chownat(
            &parent,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(err("setting owner"))?;
        if kind != EntryType::Symlink {
            // After chown, which clears set-id bits.
            rustix::fs::chmodat(&parent, name, mode, AtFlags::empty())
                .map_err(err("setting mode"))?;
        }
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                let Ok(key) = ext.key() else { continue };
                let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
                    continue;
                };
                let target = match (&file, kind) {
                    (Some(f), _) => Some(f.try_clone().map(OwnedFd::from).map_err(|source| {
                        ExtractError::Io {
                            entry: entry.clone(),
                            step: "setting extended attribute",
                            source,
                        }
                    })?),
                    (None, EntryType::Directory) => Some(
                        rustix::fs::openat2(
                            &parent,
                            name,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                            BENEATH,
                        )
                        .map_err(err("opening directory"))?,
                    ),
                    _ => None,
                };
                if let Some(fd) = target {
                    rustix::fs::fsetxattr(fd.as_fd(), attr, ext.value_bytes(), XattrFlags::empty())
                        .map_err(err("setting extended attribute"))?;
                }
            }
        }
        let mtime = h.mtime().unwrap_or(0) as i64;
        if kind == EntryType::Directory {
            self.dir_times.insert(comps.clone(), (mtime, 0));
        } else {
            set_times(&parent, name, mtime).map_err(err("setting times"))?;
        }
        Ok(())
    }
}

/// A link entry's target, as UTF-8.
fn link_target<R: Read>(e: &tar::Entry<'_, R>, entry: &str) -> Result<String, ExtractError> {
    let bad = || ExtractError::BadPath {
        entry: entry.to_string(),
    };
    let target = e.link_name_bytes().ok_or_else(bad)?;
    String::from_utf8(target.to_vec()).map_err(|_| bad())
}

fn set_times(dir: &OwnedFd, name: &str, mtime: i64) -> Result<(), Errno> {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        dir,
        name,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Unpacks a layer tar into `dest`, an existing empty directory. Returns the number of
/// bytes of file content written. On error, `dest` holds a partial layer that the
/// caller removes.
/// Unpacks a layer into the directory `dest`. `overlay_whiteouts`: Docker's
/// whiteouts become overlayfs's (character devices 0/0, opaque xattrs); without,
/// they stay as the `.wh.` files of the tar (the vfs driver's layers, on
/// filesystems where overlay whiteouts cannot be made).
pub fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    overlay_whiteouts: bool,
) -> Result<u64, ExtractError> {
    let root = rustix::fs::openat(
        CWD,
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExtractError::Io {
        entry: String::new(),
        step: "opening layer directory",
        source: e.into(),
    })?;
    unpack_into(reader, root, overlay_whiteouts)
}

/// Unpacks a tar beneath the directory `root` (an fd, so that a caller who resolved
/// it safely keeps that guarantee). `whiteouts`: turn Docker whiteouts into overlay
/// ones (layers), or take every entry literally (`docker cp`).
pub fn unpack_into<R: Read>(
    reader: R,
    root: OwnedFd,
    whiteouts: bool,
) -> Result<u64, ExtractError> {
    unpack_owned(reader, root, whiteouts, None)
}

/// [`unpack_into`] with every entry's owner mapped by `owner` (a remapped
/// container's IDs as the host sees them).
pub fn unpack_owned<R: Read>(
    reader: R,
    root: OwnedFd,
    whiteouts: bool,
    owner: Option<Owner>,
) -> Result<u64, ExtractError> {
    let mut u = Unpacker {
        root,
        whiteouts,
        dir_times: HashMap::new(),
        size: 0,
        owner,
    };
    let mut archive = tar::Archive::new(reader);
    for e in archive.entries().map_err(ExtractError::Read)? {
        u.entry(e.map_err(ExtractError::Read)?)?;
    }
    // Read to the end so that a caller hashing the stream sees all of it.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(ExtractError::Read)?;
    for (comps, (mtime, _)) in &u.dir_times {
        let (name, parents) = comps.split_last().expect("directory entries have a name");
        if let Ok(parent) = u.dir("", parents) {
            let _ = set_times(&parent, name, *mtime);
        }
    }
    Ok(u.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_clean_and_refuse_climbing_out() {
        assert_eq!(components("./a//b/./c").unwrap(), ["a", "b", "c"]);
        assert_eq!(components("/abs/x").unwrap(), ["abs", "x"]);
        assert_eq!(components("a/../b").unwrap(), ["b"]);
        assert!(matches!(
            components("../etc/passwd"),
            Err(ExtractError::Escape { .. })
        ));
        assert!(matches!(
            components("a/../../x"),
            Err(ExtractError::Escape { .. })
        ));
    }
}
