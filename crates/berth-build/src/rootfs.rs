//! Reading an image's filesystem from its layer directories (topmost first)
//! without mounting it: what exists at a path, symlinks followed inside the image
//! (never out of it), and small files such as /etc/passwd.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub struct Layers<'a> {
    /// Topmost first.
    pub dirs: &'a [PathBuf],
}

/// Joins `rel` under `root`, `..` never leaving it.
pub fn clean_abs(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

impl Layers<'_> {
    /// The entry at the cleaned absolute `path`, as the merged view shows it (no
    /// symlink followed): the layer holding it and its metadata.
    pub fn lstat(&self, path: &str) -> Option<(PathBuf, Metadata)> {
        let rel = clean_abs(path);
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            let d = self.dirs.first()?;
            return std::fs::metadata(d).ok().map(|m| (d.clone(), m));
        }
        let (parent, base) = rel.rsplit_once('/').unwrap_or(("", rel));
        for d in self.dirs {
            let p = d.join(rel);
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                if whiteout(&m) {
                    return None;
                }
                return Some((p, m));
            }
            if d.join(parent).join(format!(".wh.{base}")).exists() {
                return None;
            }
        }
        None
    }

    /// `path` with every symlink on the way resolved inside the image (the last
    /// component too when `follow_last`).
    pub fn resolve(&self, path: &str, follow_last: bool) -> String {
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = clean_abs(path)
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            let candidate = format!("/{}", {
                let mut v = done.clone();
                v.push(part.clone());
                v.join("/")
            });
            let last = todo.is_empty();
            match self.lstat(&candidate) {
                Some((p, m))
                    if m.file_type().is_symlink() && (!last || follow_last) && hops < 40 =>
                {
                    hops += 1;
                    let target = std::fs::read_link(&p).unwrap_or_default();
                    let t = target.to_string_lossy();
                    if t.starts_with('/') {
                        done.clear();
                    }
                    for seg in t.split('/').filter(|s| !s.is_empty() && *s != ".").rev() {
                        todo.push(seg.to_string());
                    }
                }
                _ => done.push(part),
            }
        }
        format!("/{}", done.join("/"))
    }

    /// A small file's contents (symlinks followed inside the image).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let p = self.resolve(path, true);
        let (host, m) = self.lstat(&p)?;
        if !m.is_file() || m.len() > 1 << 20 {
            return None;
        }
        std::fs::read(host).ok()
    }

    pub fn is_dir(&self, path: &str) -> bool {
        let p = self.resolve(path, true);
        self.lstat(&p).is_some_and(|(_, m)| m.is_dir())
    }
}

/// Resolves `rel` under the host directory `root` as if `root` were `/`: symlinks
/// are followed but never out of `root`. For content berth did not write itself
/// (another stage's files).
pub fn scoped(root: &Path, rel: &str, follow_last: bool) -> PathBuf {
    let dirs = [root.to_path_buf()];
    let l = Layers { dirs: &dirs };
    let r = l.resolve(rel, follow_last);
    root.join(r.trim_start_matches('/'))
}

/// uid and gid of `user[:group]` (names looked up in the image's files).
pub fn lookup_user(layers: &Layers<'_>, spec: &str) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd =
        String::from_utf8_lossy(&layers.read("/etc/passwd").unwrap_or_default()).into_owned();
    let groups =
        String::from_utf8_lossy(&layers.read("/etc/group").unwrap_or_default()).into_owned();
    let find = |text: &str, name: &str| -> Option<(u32, Option<u32>)> {
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 2 && f[0] == name {
                Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())))
            } else {
                None
            }
        })
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => find(&passwd, user).ok_or_else(|| {
            format!("unable to find user {user}: no matching entries in passwd file")
        })?,
    };
    let gid = match group {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find(&groups, g).map(|(id, _)| id).ok_or_else(|| {
                format!("unable to find group {g}: no matching entries in group file")
            })?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_across_layers() {
        let top = tempfile::tempdir().unwrap();
        let bottom = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(bottom.path().join("etc")).unwrap();
        std::fs::create_dir_all(bottom.path().join("real/dir")).unwrap();
        std::fs::write(
            bottom.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(bottom.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        std::fs::write(bottom.path().join("gone"), "x").unwrap();
        std::os::unix::fs::symlink("/real", bottom.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", top.path().join("escape")).unwrap();
        std::fs::write(top.path().join(".wh.gone"), "").unwrap();
        let dirs = [top.path().to_path_buf(), bottom.path().to_path_buf()];
        let l = Layers { dirs: &dirs };
        assert!(l.lstat("/gone").is_none());
        assert!(l.is_dir("/link/dir"));
        assert_eq!(l.resolve("/link/dir", true), "/real/dir");
        // A symlink pointing above the root stays inside it.
        assert_eq!(l.resolve("/escape/passwd", true), "/etc/passwd");
        assert_eq!(lookup_user(&l, "app").unwrap(), (1000, 1001));
        assert_eq!(lookup_user(&l, "app:staff").unwrap(), (1000, 50));
        assert_eq!(lookup_user(&l, "5:6").unwrap(), (5, 6));
        assert!(lookup_user(&l, "nobody")
            .unwrap_err()
            .contains("unable to find user nobody"));
    }
}
