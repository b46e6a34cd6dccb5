//! Reading image layers as overlayfs would show them merged, without mounting:
//! whiteouts (character devices 0/0, or Docker's `.wh.<name>` files in the vfs
//! driver's layers) hide what is below, an opaque directory
//! (`trusted.overlay.opaque=y`, or a `.wh..wh..opq` file) hides the directories of
//! the same path below it, and upper layers win. No symlink of a layer is ever followed. Used for the copy-up of
//! new volumes, and by the vfs driver (a container's root as a full copy, and its
//! changes against the image).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// An overlayfs whiteout: a character device 0/0.
pub fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Docker's whiteout prefix and opaque marker, as the vfs driver's layers keep them.
const WH: &str = ".wh.";
const WH_OPAQUE: &str = ".wh..wh..opq";

fn is_opaque(dir: &Path) -> bool {
    let mut v = [0u8; 1];
    matches!(rustix::fs::lgetxattr(dir, berth_image::extract::opaque_xattr(), &mut v), Ok(1) if v[0] == b'y')
        || std::fs::symlink_metadata(dir.join(WH_OPAQUE)).is_ok()
}

/// Where `rel` lies in one layer.
enum InLayer {
    /// Not in this layer: look below.
    Absent,
    Dir(Metadata),
    /// A file, symlink or whiteout at the path or above it: hides what is below.
    Shadowed(Metadata),
}

fn in_layer(layer: &Path, rel: &Path) -> std::io::Result<InLayer> {
    let mut cur = layer.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    if parts.is_empty() {
        return Ok(InLayer::Dir(std::fs::symlink_metadata(layer)?));
    }
    for (i, c) in parts.iter().enumerate() {
        cur.push(c);
        let m = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A `.wh.<name>` beside it whites it out.
                let wh = cur.with_file_name(format!("{WH}{}", c.as_os_str().to_string_lossy()));
                return Ok(match std::fs::symlink_metadata(&wh) {
                    Ok(m) => InLayer::Shadowed(m),
                    Err(_) => InLayer::Absent,
                });
            }
            Err(e) => return Err(e),
        };
        if m.is_dir() {
            if i + 1 == parts.len() {
                return Ok(InLayer::Dir(m));
            }
            continue;
        }
        return Ok(InLayer::Shadowed(m));
    }
    Ok(InLayer::Absent)
}

/// What `rel` is in the merged view: its metadata and the layer it comes from, or
/// None when it is not there (absent, whited out, or below a non-directory).
pub fn lookup(layers: &[PathBuf], rel: &Path) -> std::io::Result<Option<(Metadata, usize)>> {
    for (i, layer) in layers.iter().enumerate() {
        match in_layer(layer, rel)? {
            InLayer::Absent => continue,
            InLayer::Dir(m) => return Ok(Some((m, i))),
            InLayer::Shadowed(m) => {
                // Only the path itself counts; a non-directory above it hides it.
                let exact =
                    std::fs::symlink_metadata(layer.join(rel)).is_ok_and(|x| x.ino() == m.ino());
                return Ok((exact && !is_whiteout(&m)).then_some((m, i)));
            }
        }
    }
    Ok(None)
}

/// The entries of the merged directory `rel`: name, metadata, and the index of the
/// layer each comes from (directories merge further down from there).
pub fn merged_entries(
    layers: &[PathBuf],
    rel: &Path,
) -> std::io::Result<Vec<(OsString, Metadata, usize)>> {
    let mut out = Vec::new();
    let mut seen: HashSet<OsString> = HashSet::new();
    let mut found = false;
    for (i, layer) in layers.iter().enumerate() {
        match in_layer(layer, rel)? {
            InLayer::Absent if !found => continue,
            InLayer::Dir(_) => {}
            _ => break,
        }
        found = true;
        let dir = layer.join(rel);
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(hidden) = name.to_str().and_then(|n| n.strip_prefix(WH)) {
                // Docker's whiteout: hides `hidden` below (the opaque marker is
                // handled after the listing).
                seen.insert(hidden.into());
                continue;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            let m = std::fs::symlink_metadata(entry.path())?;
            if !is_whiteout(&m) {
                out.push((name, m, i));
            }
        }
        if is_opaque(&dir) {
            break;
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Copies the merged view of directory `rel` over `layers` (topmost first) into the
/// directory `dst`, keeping modes, owners and times (what `cp -a` keeps, without
/// xattrs, hard links and device nodes). Only a directory is copied, as Docker does;
/// a path that is a file or a symlink in the topmost layer that has it is left alone.
pub fn copy_merged(layers: &[PathBuf], rel: &Path, dst: &Path) -> std::io::Result<()> {
    copy_merged_owned(layers, rel, dst, &|u, g| (u, g))
}

/// Maps an entry's (uid, gid) to the owner written.
pub type Owner<'a> = &'a dyn Fn(u32, u32) -> (u32, u32);

/// [`copy_merged`] with every owner mapped by `owner` (a remapped container's host
/// IDs). The destination, which another running container may share (a volume),
/// is reached by descriptors only, never by a path through it: a directory swapped
/// for a symlink meanwhile ends the copy (`O_NOFOLLOW`), it never leads outside.
pub fn copy_merged_owned(
    layers: &[PathBuf],
    rel: &Path,
    dst: &Path,
    owner: Owner<'_>,
) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        dst,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    copy_into(layers, rel, &fd, owner)
}

fn copy_into(
    layers: &[PathBuf],
    rel: &Path,
    dst: &std::os::fd::OwnedFd,
    owner: Owner<'_>,
) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let Some((top, _)) = lookup(layers, rel)?.filter(|(m, _)| m.is_dir()) else {
        return Ok(());
    };
    for (name, m, i) in merged_entries(layers, rel)? {
        let from = layers[i].join(rel).join(&name);
        let ft = m.file_type();
        if ft.is_dir() {
            rustix::fs::mkdirat(dst, &name, Mode::from_raw_mode(0o700))?;
            let sub = rustix::fs::openat(
                dst,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            copy_into(&layers[i..], &rel.join(&name), &sub, owner)?;
        } else if ft.is_symlink() {
            rustix::fs::symlinkat(std::fs::read_link(&from)?, dst, &name)?;
            let (uid, gid) = owner(m.uid(), m.gid());
            rustix::fs::chownat(
                dst,
                &name,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )?;
            rustix::fs::utimensat(
                dst,
                &name,
                &times(&m),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )?;
        } else if ft.is_file() {
            let mut src = std::fs::File::from(rustix::fs::open(
                &from,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
            let out = rustix::fs::openat(
                dst,
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut out = std::fs::File::from(out);
            std::io::copy(&mut src, &mut out)?;
            own_and_time(&out, &m, owner)?;
        }
    }
    own_and_time(dst, &top, owner)
}

fn times(m: &Metadata) -> rustix::fs::Timestamps {
    let ts = |s: i64, ns: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    rustix::fs::Timestamps {
        last_access: ts(m.atime(), m.atime_nsec()),
        last_modification: ts(m.mtime(), m.mtime_nsec()),
    }
}

/// Owner, then mode (a chown clears set-id bits), then times, on an open file or
/// directory: nothing is looked up by name.
fn own_and_time<Fd: std::os::fd::AsFd>(
    fd: Fd,
    m: &Metadata,
    owner: Owner<'_>,
) -> std::io::Result<()> {
    let (uid, gid) = owner(m.uid(), m.gid());
    rustix::fs::fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(m.mode() & 0o7777))?;
    rustix::fs::futimens(&fd, &times(m))?;
    Ok(())
}

/// Whether an entry of a container's root differs from the image's: kind, mode,
/// owner, and for files size and time, for symlinks the target.
fn differs(root_path: &Path, m: &Metadata, image_path: &Path, im: &Metadata) -> bool {
    if m.file_type() != im.file_type()
        || m.mode() != im.mode()
        || m.uid() != im.uid()
        || m.gid() != im.gid()
    {
        return true;
    }
    if m.is_file() {
        return m.len() != im.len() || m.mtime() != im.mtime() || m.mtime_nsec() != im.mtime_nsec();
    }
    if m.file_type().is_symlink() {
        return std::fs::read_link(root_path).ok() != std::fs::read_link(image_path).ok();
    }
    false
}

/// The changes of a full-copy root (`root`) against the image (`layers`), as
/// `(path, kind)` in Docker's kinds (0 changed, 1 added, 2 deleted), sorted by path;
/// `skip` lists paths left out (berth's mount points). A directory counts as
/// changed when something in it changed.
pub fn changes(
    root: &Path,
    layers: &[PathBuf],
    skip: &[&str],
) -> std::io::Result<Vec<(String, u8)>> {
    let mut out = Vec::new();
    walk_changes(root, layers, Path::new(""), skip, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk_changes(
    root: &Path,
    layers: &[PathBuf],
    rel: &Path,
    skip: &[&str],
    out: &mut Vec<(String, u8)>,
) -> std::io::Result<bool> {
    let mut any = false;
    let shown = |p: &Path| format!("/{}", p.display());
    let mut here: HashSet<OsString> = HashSet::new();
    let mut names: Vec<_> = std::fs::read_dir(root.join(rel))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        here.insert(name.clone());
        let r = rel.join(&name);
        if skip.contains(&shown(&r).as_str()) {
            continue;
        }
        let path = root.join(&r);
        let m = std::fs::symlink_metadata(&path)?;
        let image = lookup(layers, &r)?;
        match image {
            None => {
                out.push((shown(&r), 1));
                any = true;
                // Everything below a new directory is new too.
                if m.is_dir() {
                    list_all(root, &r, skip, out)?;
                }
            }
            Some((im, i)) => {
                let ipath = layers[i].join(&r);
                let own = differs(&path, &m, &ipath, &im);
                let below = m.is_dir() && im.is_dir() && walk_changes(root, layers, &r, skip, out)?;
                if own || below {
                    out.push((shown(&r), 0));
                    any = true;
                }
            }
        }
    }
    // What the image has here and the root does not: deleted.
    if lookup(layers, rel)?.is_some_and(|(m, _)| m.is_dir()) {
        for (name, _, _) in merged_entries(layers, rel)? {
            if !here.contains(&name) && !skip.contains(&shown(&rel.join(&name)).as_str()) {
                out.push((shown(&rel.join(&name)), 2));
                any = true;
            }
        }
    }
    Ok(any)
}

fn list_all(
    root: &Path,
    rel: &Path,
    skip: &[&str],
    out: &mut Vec<(String, u8)>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(root.join(rel))?.flatten() {
        let r = rel.join(e.file_name());
        let shown = format!("/{}", r.display());
        if skip.contains(&shown.as_str()) {
            continue;
        }
        out.push((shown, 1));
        if e.file_type()?.is_dir() {
            list_all(root, &r, skip, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_merged_follows_overlay_rules() {
        use std::os::unix::fs::PermissionsExt;
        assert!(
            rustix::process::geteuid().is_root(),
            "whiteouts (0/0 character devices) and opaque xattrs need root"
        );
        let d = tempfile::tempdir().unwrap();
        let (top, mid, low, dst) = (
            d.path().join("top"),
            d.path().join("mid"),
            d.path().join("low"),
            d.path().join("dst"),
        );
        for l in [&top, &mid, &low] {
            std::fs::create_dir_all(l.join("data")).unwrap();
        }
        std::fs::create_dir(&dst).unwrap();
        // low: a, gone, old/x, and a directory an upper layer makes opaque.
        std::fs::write(low.join("data/a"), b"low-a").unwrap();
        std::fs::write(low.join("data/gone"), b"x").unwrap();
        std::fs::create_dir_all(low.join("data/op")).unwrap();
        std::fs::write(low.join("data/op/hidden"), b"x").unwrap();
        std::fs::create_dir_all(low.join("data/sub")).unwrap();
        std::fs::write(low.join("data/sub/deep"), b"deep").unwrap();
        // mid: a is replaced, gone is whited out, op is opaque with its own file.
        std::fs::write(mid.join("data/a"), b"mid-a").unwrap();
        std::fs::set_permissions(mid.join("data/a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            mid.join("data/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        std::fs::create_dir_all(mid.join("data/op")).unwrap();
        rustix::fs::setxattr(
            mid.join("data/op"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        std::fs::write(mid.join("data/op/seen"), b"x").unwrap();
        // top: a symlink to a host path, copied as a link and never followed.
        std::os::unix::fs::symlink("/etc", top.join("data/link")).unwrap();
        let layers = vec![top.clone(), mid.clone(), low.clone()];
        copy_merged(&layers, Path::new("data"), &dst).unwrap();
        assert_eq!(std::fs::read(dst.join("a")).unwrap(), b"mid-a");
        assert_eq!(
            std::fs::metadata(dst.join("a"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(!dst.join("gone").exists(), "whited out");
        assert!(dst.join("op/seen").exists());
        assert!(!dst.join("op/hidden").exists(), "below an opaque directory");
        assert_eq!(std::fs::read(dst.join("sub/deep")).unwrap(), b"deep");
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("/etc")
        );
        // A VOLUME path through a symlink of the image copies nothing, even with a
        // real directory of that name in a lower layer.
        std::os::unix::fs::symlink("/etc", top.join("escape")).unwrap();
        std::fs::create_dir_all(low.join("escape/ssl")).unwrap();
        std::fs::write(low.join("escape/ssl/x"), b"x").unwrap();
        let dst2 = d.path().join("dst2");
        std::fs::create_dir(&dst2).unwrap();
        copy_merged(&layers, Path::new("escape/ssl"), &dst2).unwrap();
        assert_eq!(std::fs::read_dir(&dst2).unwrap().count(), 0);
    }

    #[test]
    fn docker_style_whiteouts_in_layers() {
        let d = tempfile::tempdir().unwrap();
        let (top, low, dst) = (
            d.path().join("top"),
            d.path().join("low"),
            d.path().join("dst"),
        );
        std::fs::create_dir_all(low.join("d/keep")).unwrap();
        std::fs::write(low.join("d/gone"), b"x").unwrap();
        std::fs::write(low.join("d/keep/old"), b"x").unwrap();
        std::fs::create_dir_all(top.join("d/keep")).unwrap();
        std::fs::write(top.join("d/.wh.gone"), b"").unwrap();
        std::fs::write(top.join("d/keep/.wh..wh..opq"), b"").unwrap();
        std::fs::write(top.join("d/keep/new"), b"x").unwrap();
        std::fs::create_dir(&dst).unwrap();
        let layers = vec![top.clone(), low.clone()];
        copy_merged(&layers, Path::new(""), &dst).unwrap();
        assert!(!dst.join("d/gone").exists());
        assert!(!dst.join("d/.wh.gone").exists(), "markers are not content");
        assert!(dst.join("d/keep/new").exists());
        assert!(
            !dst.join("d/keep/old").exists(),
            "below an opaque directory"
        );
        assert!(!dst.join("d/keep/.wh..wh..opq").exists());
        assert!(lookup(&layers, Path::new("d/gone")).unwrap().is_none());
    }

    #[test]
    fn full_copy_changes_against_the_image() {
        let d = tempfile::tempdir().unwrap();
        let (img, root) = (d.path().join("img"), d.path().join("root"));
        std::fs::create_dir_all(img.join("etc")).unwrap();
        std::fs::create_dir_all(img.join("bin")).unwrap();
        std::fs::write(img.join("etc/passwd"), b"root").unwrap();
        std::fs::write(img.join("bin/sync"), b"x").unwrap();
        std::fs::write(img.join("bin/sh"), b"x").unwrap();
        std::fs::create_dir(&root).unwrap();
        let layers = vec![img.clone()];
        copy_merged(&layers, Path::new(""), &root).unwrap();
        assert_eq!(
            changes(&root, &layers, &[]).unwrap(),
            vec![],
            "a fresh copy has no changes"
        );
        std::fs::write(root.join("added"), b"new").unwrap();
        std::fs::write(root.join("etc/passwd"), b"root\nbob").unwrap();
        std::fs::remove_file(root.join("bin/sync")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        let got = changes(&root, &layers, &["/proc"]).unwrap();
        let want: Vec<(String, u8)> = vec![
            ("/added".into(), 1),
            ("/bin".into(), 0),
            ("/bin/sync".into(), 2),
            ("/etc".into(), 0),
            ("/etc/passwd".into(), 0),
        ];
        assert_eq!(got, want);
    }
}
