//! containerd's tar breakout cases, ported: each malicious layer must fail with an
//! error naming the entry, and nothing may appear outside the layer directory.
//! Needs root (chown and mknod of whiteouts).

use berth_image::extract::{unpack, ExtractError};
use std::path::Path;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests need root: run the suite as root"
    );
}

struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }
    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }
    fn file(mut self, name: &str, data: &[u8]) -> Layer {
        let mut h = Self::header(tar::EntryType::Regular, data.len() as u64);
        // Written raw so that no path check of the tar crate stands in for ours.
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn dir(mut self, name: &str) -> Layer {
        let mut h = Self::header(tar::EntryType::Directory, 0);
        h.set_mode(0o755);
        self.0.append_data(&mut h, name, std::io::empty()).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Layer {
        let mut h = Self::header(kind, 0);
        h.set_path(name).unwrap();
        h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        self.0.append(&h, std::io::empty()).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A sandbox: `outside/` stands for the host, `layer/` is the extraction root.
struct Sandbox {
    _tmp: tempfile::TempDir,
    layer: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn sandbox() -> Sandbox {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("a/b/layer");
    let outside = tmp.path().join("a/outside");
    std::fs::create_dir_all(&layer).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    Sandbox {
        _tmp: tmp,
        layer,
        outside,
    }
}

fn assert_nothing_in(dir: &Path) {
    let entries: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(
        entries.is_empty(),
        "something was written outside: {entries:?}"
    );
}

#[test]
fn breakout_dotdot_entry() {
    let s = sandbox();
    let tar = Layer::new().file("../../outside/pwned", b"x").bytes();
    let err = unpack(&tar[..], &s.layer, true).unwrap_err();
    assert!(
        matches!(err, ExtractError::Escape { ref entry } if entry == "../../outside/pwned"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "layer entry \"../../outside/pwned\" points outside the layer"
    );
    assert_nothing_in(&s.outside);
}

#[test]
fn breakout_absolute_symlink_then_write_through_it() {
    let s = sandbox();
    let target = s.outside.to_str().unwrap().to_string();
    let tar = Layer::new()
        .link(tar::EntryType::Symlink, "escape", &target)
        .file("escape/pwned", b"x")
        .bytes();
    let err = unpack(&tar[..], &s.layer, true).unwrap_err();
    assert!(
        matches!(err, ExtractError::Escape { ref entry } if entry == "escape/pwned"),
        "{err}"
    );
    assert_nothing_in(&s.outside);
}

#[test]
fn breakout_relative_symlink_climbing_out() {
    let s = sandbox();
    let tar = Layer::new()
        .link(tar::EntryType::Symlink, "up", "../../outside")
        .file("up/pwned", b"x")
        .bytes();
    assert!(matches!(
        unpack(&tar[..], &s.layer, true),
        Err(ExtractError::Escape { .. })
    ));
    assert_nothing_in(&s.outside);
}

#[test]
fn breakout_hardlink_to_outside_file() {
    let s = sandbox();
    std::fs::write(s.outside.join("secret"), b"host data").unwrap();
    let tar = Layer::new()
        .link(tar::EntryType::Link, "stolen", "../../outside/secret")
        .bytes();
    let err = unpack(&tar[..], &s.layer, true).unwrap_err();
    assert!(matches!(err, ExtractError::Escape { .. }), "{err}");
    let tar = Layer::new()
        .link(tar::EntryType::Symlink, "sym", s.outside.to_str().unwrap())
        .link(tar::EntryType::Link, "stolen2", "sym/secret")
        .bytes();
    assert!(matches!(
        unpack(&tar[..], &s.layer, true),
        Err(ExtractError::Escape { .. })
    ));
    assert_eq!(std::fs::read_dir(&s.outside).unwrap().count(), 1);
    assert_eq!(
        std::fs::metadata(s.outside.join("secret")).unwrap().len(),
        9
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(s.outside.join("secret")).unwrap().nlink(),
        1
    );
}

#[test]
fn device_numbers_out_of_range_are_refused() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_size(0);
    h.set_mode(0o600);
    h.set_device_major(5000).unwrap();
    h.set_device_minor(1).unwrap();
    b.append_data(&mut h, "dev/evil", std::io::empty()).unwrap();
    let tar = b.into_inner().unwrap();
    let err = unpack(&tar[..], &s.layer, true).unwrap_err();
    assert!(
        matches!(err, ExtractError::DeviceRange { major: 5000, .. }),
        "{err}"
    );
}

#[test]
fn ordinary_layer_with_whiteouts_and_links() {
    let s = sandbox();
    let tar = Layer::new()
        .dir("etc")
        .file("etc/hosts", b"127.0.0.1 localhost\n")
        .link(tar::EntryType::Symlink, "bin", "usr/bin")
        .dir("usr/bin")
        .file("usr/bin/tool", b"#!/bin/sh\n")
        .link(tar::EntryType::Link, "usr/bin/tool2", "usr/bin/tool")
        .file("bin/through-symlink", b"ok")
        .file("etc/.wh.passwd", b"")
        .file("var/.wh..wh..opq", b"")
        .bytes();
    let size = unpack(&tar[..], &s.layer, true).unwrap();
    assert_eq!(size, 20 + 10 + 2);
    assert_eq!(
        std::fs::read(s.layer.join("usr/bin/through-symlink")).unwrap(),
        b"ok"
    );
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = std::fs::symlink_metadata(s.layer.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(
        std::fs::metadata(s.layer.join("usr/bin/tool"))
            .unwrap()
            .nlink(),
        2
    );
    let opaque =
        rustix::fs::getxattr(s.layer.join("var"), "trusted.overlay.opaque", &mut [0u8; 4]).unwrap();
    assert_eq!(opaque, 1);
}
