//! `--platform` and images of another architecture: an arm64 busybox (Debian's
//! busybox-static for arm64, fetched by scripts/deps.sh) runs through QEMU's
//! user-mode emulator once a binfmt_misc handler with the F flag is registered;
//! without one, the start says so. The test registers its own handlers (and
//! removes them): binfmt_misc is the host's, so nothing else is touched.

use berth_tests::archive::{image_for, Layer};
use berth_tests::Daemon;
use std::path::{Path, PathBuf};

const ARM64_DEB: &str = "/var/cache/berth-tests/busybox-static_arm64.deb";
const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// QEMU's ELF magic and mask for aarch64 and s390x (qemu-binfmt-conf.sh's).
const AARCH64: (&str, &str) = (
    r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
    r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
);
const S390X: (&str, &str) = (
    r"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
    r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
);

/// A binfmt_misc handler registered for the test's lifetime.
struct Handler {
    name: String,
    mounted: bool,
}

impl Handler {
    fn register(
        name: &str,
        (magic, mask): (&str, &str),
        interpreter: &str,
        flags: &str,
    ) -> Handler {
        let mut mounted = false;
        if !Path::new(BINFMT).join("register").exists() {
            let st = std::process::Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT])
                .status()
                .unwrap();
            assert!(st.success(), "mounting binfmt_misc");
            mounted = true;
        }
        let name = format!("{name}-{}", std::process::id());
        std::fs::write(
            Path::new(BINFMT).join("register"),
            format!(":{name}:M::{magic}:{mask}:{interpreter}:{flags}"),
        )
        .unwrap_or_else(|e| panic!("registering binfmt handler {name}: {e}"));
        Handler { name, mounted }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = std::fs::write(Path::new(BINFMT).join(&self.name), "-1");
        if self.mounted {
            let only_ours = std::fs::read_dir(BINFMT)
                .map(|d| {
                    d.flatten().all(|e| {
                        ["register", "status"].contains(&e.file_name().to_str().unwrap_or(""))
                    })
                })
                .unwrap_or(false);
            if only_ours {
                let _ = std::process::Command::new("umount").arg(BINFMT).status();
            }
        }
    }
}

/// Debian's arm64 busybox, from the .deb deps.sh fetched.
fn arm64_busybox(d: &Daemon) -> Vec<u8> {
    assert!(
        Path::new(ARM64_DEB).exists(),
        "{ARM64_DEB} is missing: run scripts/deps.sh"
    );
    let dir: PathBuf = d.root.path().join("arm64-deb");
    let st = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(ARM64_DEB)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(dir.join("bin/busybox")).unwrap()
}

fn load(d: &Daemon, tag: &str, arch: &str, busybox: &[u8]) {
    let layer = Layer::new()
        .dir("bin")
        .executable("bin/busybox", busybox)
        .symlink("bin/sh", "busybox")
        .symlink("bin/uname", "busybox")
        .finish();
    let tar = image_for(&[layer], tag, &["sh"], arch);
    d.docker_in(&["load"], &tar).ok();
}

#[test]
fn platform_linux_arm64_runs_an_arm64_busybox_through_qemu() {
    let d = Daemon::start();
    let arm = arm64_busybox(&d);
    load(&d, "bb64", "arm64", &arm);
    // An image of an architecture no handler runs: refused at start, in words,
    // with dockerd's warning at create.
    let host_busybox = std::fs::read("/bin/busybox").unwrap();
    load(&d, "bbs390", "s390x", &host_busybox);
    let o = d.docker(&["run", "--rm", "bbs390", "uname", "-m"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("The requested image's platform (linux/s390x) does not match the detected host platform (linux/amd64)"),
        "{o:?}"
    );
    assert!(
        o.stderr.contains("image platform linux/s390x cannot run on this linux/amd64 host: no binfmt_misc handler runs s390x programs"),
        "{o:?}"
    );
    // A handler without F could not find its emulator from inside a container.
    {
        let _h = Handler::register("berth-test-s390x", S390X, "/usr/bin/qemu-s390x-static", "");
        let o = d.docker(&["run", "--rm", "bbs390", "true"]);
        assert!(
            o.stderr.contains("was registered without the F flag"),
            "{o:?}"
        );
    }

    let _h = Handler::register(
        "berth-test-aarch64",
        AARCH64,
        "/usr/bin/qemu-aarch64-static",
        "F",
    );
    let o = d.docker(&["run", "--rm", "bb64", "uname", "-m"]);
    assert_eq!(o.ok().trim(), "aarch64", "{o:?}");
    assert!(
        o.stderr
            .contains("does not match the detected host platform"),
        "{o:?}"
    );
    // Asked for: no warning; the image is the one asked.
    let o = d.docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "bb64",
        "uname",
        "-m",
    ]);
    assert_eq!(o.ok().trim(), "aarch64", "{o:?}");
    assert!(!o.stderr.contains("WARNING"), "{o:?}");
    let out = d.berth(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "bb64",
        "uname",
        "-m",
    ]);
    assert_eq!(out.ok().trim(), "aarch64");
    // Another platform than the image's: dockerd's not-found words, which make
    // the CLIs pull the right one.
    let (status, _, body) = d.api(
        "POST",
        "/containers/create?platform=linux%2Famd64",
        Some(r#"{"Image":"bb64"}"#),
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("image with reference bb64 was found but does not match the specified platform: wanted linux/amd64, actual: linux/arm64"),
        "{body}"
    );
}
