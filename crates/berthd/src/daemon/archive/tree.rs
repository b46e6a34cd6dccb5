//! Writing a directory tree into a tar, on fds only: `docker cp`'s archives, export,
//! and the layer a commit makes.

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::io::Read;
use std::os::fd::OwnedFd;

/// How a tree becomes a tar.
#[derive(Default)]
pub struct Walk<'a> {
    /// A writable layer (`docker commit`): overlay whiteouts become Docker's
    /// `.wh.` entries and opaque directories get `.wh..wh..opq`.
    pub layer: bool,
    /// Paths (with a leading `/`, relative to the walk's root) left out.
    pub skip: &'a [&'a str],
    /// Device nodes are written (a whole filesystem, `docker export`).
    pub devices: bool,
    /// A directory is written without its content (its entries are listed on
    /// their own: a vfs commit).
    pub shallow: bool,
    /// A remapped container's mapping: owners are written as it sees them.
    pub ids: Option<&'a berth_runtime::spec::IdMap>,
}

/// Adds `name` (in directory `dir`) to the tar as `as_path`, recursively, opening
/// everything relative to its directory's fd and never following a symlink.
pub fn add<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: &str,
    as_path: &str,
    walk: &Walk<'_>,
) -> std::io::Result<()> {
    if walk
        .skip
        .iter()
        .any(|s| s.trim_start_matches('/') == as_path.trim_start_matches('/'))
    {
        return Ok(());
    }
    let st = if name == "." {
        rustix::fs::fstat(dir)?
    } else {
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?
    };
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    let (uid, gid) = match walk.ids {
        // Unmapped IDs show as the overflow ID, as inside.
        Some(m) => (
            berth_runtime::spec::IdMap::to_container(&m.uids, st.st_uid).unwrap_or(65534),
            berth_runtime::spec::IdMap::to_container(&m.gids, st.st_gid).unwrap_or(65534),
        ),
        None => (st.st_uid, st.st_gid),
    };
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    let kind = FileType::from_raw_mode(st.st_mode);
    if walk.layer && kind == FileType::CharacterDevice && st.st_rdev == 0 {
        let (parent, base) = as_path
            .rsplit_once('/')
            .map_or(("", as_path), |(p, b)| (p, b));
        let wh = if parent.is_empty() {
            format!(".wh.{base}")
        } else {
            format!("{parent}/.wh.{base}")
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        return b.append_data(&mut h, wh, std::io::empty());
    }
    match kind {
        FileType::Directory => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{as_path}/"), std::io::empty())?;
            if walk.shallow {
                return Ok(());
            }
            let fd = if name == "." {
                rustix::fs::openat(
                    dir,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?
            } else {
                rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?
            };
            let mut names: Vec<String> = rustix::fs::Dir::read_from(&fd)?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "." && n != "..")
                .collect();
            names.sort();
            let opaque = walk.layer
                && rustix::fs::fgetxattr(&fd, berth_image::extract::opaque_xattr(), &mut [0u8; 1])
                    .is_ok_and(|n| n == 1);
            if opaque {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, format!("{as_path}/.wh..wh..opq"), std::io::empty())?;
            }
            for n in names {
                add(b, &fd, &n, &format!("{as_path}/{n}"), walk)?;
            }
        }
        FileType::RegularFile => {
            let f = std::fs::File::from(rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
            h.set_size(st.st_size as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, as_path, f.take(st.st_size as u64))?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, as_path, target.to_string_lossy().as_ref())?;
        }
        FileType::Fifo => {
            h.set_entry_type(tar::EntryType::Fifo);
            b.append_data(&mut h, as_path, std::io::empty())?;
        }
        FileType::CharacterDevice | FileType::BlockDevice if walk.layer || walk.devices => {
            h.set_entry_type(if kind == FileType::CharacterDevice {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            h.set_device_major(rustix::fs::major(st.st_rdev))?;
            h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
            b.append_data(&mut h, as_path, std::io::empty())?;
        }
        // Devices are not copied out by `docker cp`, sockets never.
        _ => {}
    }
    Ok(())
}
