//! The host's mount table as /proc/self/mountinfo tells it: which mount holds
//! a path, with its propagation and super-block options.

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub mount_point: PathBuf,
    /// The optional fields: `shared:N`, `master:N`, ...
    pub optional: Vec<String>,
    /// The super-block options (`rw,prjquota`...).
    pub super_options: String,
}

impl Mount {
    pub fn shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    pub fn slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(Mount {
                mount_point: PathBuf::from(unescape(f.get(4)?)),
                optional: f.get(6..sep)?.iter().map(|s| s.to_string()).collect(),
                super_options: f.get(sep + 3)?.to_string(),
            })
        })
        .collect()
}

/// The mount table now.
pub fn mounts() -> Vec<Mount> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// Whether something is mounted at `p`.
pub fn is_mount_point(p: &Path) -> bool {
    mounts().iter().any(|m| m.mount_point == p)
}

/// The mount holding `p` (the longest mount point above it; the last one when
/// several are stacked there), from table `mounts`.
pub fn holding<'a>(mounts: &'a [Mount], p: &Path) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts.iter().filter(|m| p.starts_with(&m.mount_point)) {
        if best.is_none_or(|b| m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len()) {
            best = Some(m);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /srv rw shared:5 master:2 - xfs /dev/sdb rw,prjquota
31 30 0:26 / /srv/my\\040data rw - tmpfs t rw
32 31 0:27 / /srv/my\\040data rw shared:9 - tmpfs t rw
";

    #[test]
    fn the_longest_and_last_mount_holds_a_path() {
        let t = parse(TABLE);
        assert_eq!(t.len(), 4);
        let m = holding(&t, Path::new("/srv/x/y")).unwrap();
        assert_eq!(m.mount_point, Path::new("/srv"));
        assert!(m.shared() && m.slave());
        assert_eq!(m.super_options, "rw,prjquota");
        let m = holding(&t, Path::new("/srv/my data/f")).unwrap();
        assert_eq!(m.optional, ["shared:9"]);
        assert!(!holding(&t, Path::new("/home")).unwrap().slave());
    }
}
