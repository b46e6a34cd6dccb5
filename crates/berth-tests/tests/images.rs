//! Images through the real docker CLI: load, save, tag, rmi, import, history, and
//! hostile archives.

use berth_tests::archive::{image, Layer};
use berth_tests::Daemon;
use std::path::Path;

fn store_is_clean(d: &Daemon) {
    let tmp: Vec<_> = std::fs::read_dir(d.data_root.join("tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "work left in the store's tmp: {tmp:?}");
}

#[test]
fn save_then_load_into_a_fresh_daemon_and_back() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok()
        .trim()
        .to_string();
    let out = d.root.path().join("saved.tar");
    d.docker(&["save", "-o", out.to_str().unwrap(), "busybox"])
        .ok();
    // The archive is both a docker-archive and an OCI layout.
    let listing = berth_tests::run(
        {
            let mut c = std::process::Command::new("tar");
            c.arg("-tf").arg(&out);
            c
        },
        None,
    );
    for f in ["manifest.json", "index.json", "oci-layout"] {
        assert!(
            listing.ok().lines().any(|l| l == f),
            "{f} missing: {listing:?}"
        );
    }
    let d2 = Daemon::start();
    let o = d2.docker(&["load", "-i", out.to_str().unwrap()]);
    assert_eq!(o.ok(), "Loaded image: busybox:latest\n");
    let id2 = d2
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(id, id2, "the same image ID after a save/load round trip");
    assert_eq!(
        d2.docker(&["run", "--rm", "busybox", "echo", "ok"]).ok(),
        "ok\n"
    );
    // Loading an image it already has changes nothing.
    let o = d.docker_in(&["load"], &std::fs::read(&out).unwrap());
    assert_eq!(o.ok(), "Loaded image: busybox:latest\n");
    assert_eq!(d.docker(&["images", "-q"]).ok().lines().count(), 1);
    store_is_clean(&d);
}

#[test]
fn load_an_oci_image_layout() {
    let d = Daemon::start();
    d.load_busybox();
    let saved = d.root.path().join("saved.tar");
    d.docker(&["save", "-o", saved.to_str().unwrap(), "busybox"])
        .ok();
    // Keep only the OCI layout: index.json, oci-layout and the blobs.
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(std::fs::File::open(&saved).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "manifest.json" {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        b.append_data(&mut h, &name, &data[..]).unwrap();
    }
    let oci = b.into_inner().unwrap();
    let d2 = Daemon::start();
    let o = d2.docker_in(&["load"], &oci);
    assert_eq!(o.ok(), "Loaded image: busybox:latest\n");
    assert_eq!(
        d2.docker(&["run", "--rm", "busybox", "echo", "from oci"])
            .ok(),
        "from oci\n"
    );
}

#[test]
fn tags_inspect_history_and_filters() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["tag", "busybox", "me/tool:v1"]).ok();
    let o = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut tags: Vec<&str> = o.ok().lines().collect();
    tags.sort();
    assert_eq!(tags, ["busybox:latest", "me/tool:v1"]);
    let o = d.docker(&[
        "images",
        "--filter",
        "reference=me/*",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(o.ok(), "me/tool\n");
    let o = d.docker(&["images", "--filter", "dangling=true", "-q"]);
    assert_eq!(o.ok(), "");
    let o = d.docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Os}} {{len .RootFS.Layers}} {{json .Config.Cmd}}",
        "me/tool:v1",
    ]);
    assert_eq!(o.ok().trim(), "linux 1 [\"sh\"]");
    let o = d.docker(&["history", "--format", "{{.CreatedBy}}", "busybox"]);
    assert_eq!(o.ok().trim(), "scripts/mkimage-busybox.sh");
    let o = d.docker(&["tag", "busybox", "Bad/Name"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("must be lowercase"), "{o:?}");
    let o = d.docker(&["image", "inspect", "nosuch"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("No such image: nosuch"), "{o:?}");
    // Untagging one of two names keeps the image.
    let o = d.docker(&["rmi", "me/tool:v1"]);
    assert_eq!(o.ok(), "Untagged: me/tool:v1\n");
    d.docker(&["image", "inspect", "busybox"]).ok();
}

#[test]
fn rmi_while_in_use_is_409_and_force_rules() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "-d", "--name", "user", "busybox", "sleep", "100"])
        .ok();
    let o = d.docker(&["rmi", "busybox"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container"
        ),
        "{o:?}"
    );
    let id = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok()
        .trim()
        .to_string();
    let o = d.docker(&["rmi", "-f", &id]);
    assert!(
        o.stderr
            .contains("(cannot be forced) - image is being used by running container"),
        "{o:?}"
    );
    // The status code itself, on the API.
    let (status, _, body) = d.api("DELETE", "/v1.44/images/busybox", None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body.starts_with("{\"message\":\"conflict: unable to remove repository reference"),
        "{body}"
    );
    d.docker(&["rm", "-f", "user"]).ok();
    let o = d.docker(&["rmi", "busybox"]);
    assert!(
        o.ok().contains("Untagged: busybox:latest") && o.stdout.contains(&format!("Deleted: {id}")),
        "{o:?}"
    );
    assert_eq!(
        std::fs::read_dir(d.data_root.join("layers"))
            .unwrap()
            .count(),
        0,
        "layers removed with the image"
    );
}

#[test]
fn import_with_changes() {
    let d = Daemon::start();
    d.load_busybox();
    // A root filesystem tar taken from the busybox image's own layer.
    let id = d.docker(&["create", "busybox"]).ok().trim().to_string();
    let layer_dir = std::fs::read_dir(d.data_root.join("layers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let tar = std::fs::read(layer_dir.join("layer.tar")).unwrap();
    let o = d.docker_in(
        &[
            "import",
            "--change",
            "CMD [\"echo\", \"imported\"]",
            "--change",
            "ENV WHO=me",
            "-m",
            "from a test",
            "-",
            "imp:v1",
        ],
        &tar,
    );
    assert!(o.ok().starts_with("sha256:"), "{o:?}");
    assert_eq!(d.docker(&["run", "--rm", "imp:v1"]).ok(), "imported\n");
    assert_eq!(
        d.docker(&["run", "--rm", "imp:v1", "sh", "-c", "echo $WHO"])
            .ok(),
        "me\n"
    );
    let o = d.docker(&["history", "--format", "{{.Comment}}", "imp:v1"]);
    assert_eq!(o.ok().trim(), "from a test");
    let o = d.docker_in(&["import", "--change", "RUN make", "-", "bad:v1"], &tar);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("RUN is not a valid change command"),
        "{o:?}"
    );
    d.docker(&["rm", &id]).ok();
    store_is_clean(&d);
}

#[test]
fn bad_archives_are_named_and_leave_nothing() {
    let d = Daemon::start();
    let o = d.docker_in(&["load"], b"this is not a tar at all, just text that goes on for a while...................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................");
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("invalid image archive"), "{o:?}");
    // A layer whose content does not match its diff id.
    let good = Layer::new().file("a", b"x").finish();
    let mut tar = image(std::slice::from_ref(&good), "liar:v1", &["true"]);
    let other = Layer::new().file("a", b"y").finish();
    // Swap the layer blob for other content under the same name.
    let hex = |d: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(d))
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(&tar[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == format!("blobs/sha256/{}", hex(&good)) {
            data = other.clone();
        }
        let mut h = e.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &name, &data[..]).unwrap();
    }
    tar = b.into_inner().unwrap();
    let o = d.docker_in(&["load"], &tar);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("layer 0 of the image has digest sha256:")
            && o.stderr.contains("but the image config says"),
        "{o:?}"
    );
    // Also when a layer with that diff id is already stored: the content given is
    // checked every time.
    d.docker_in(
        &["load"],
        &image(std::slice::from_ref(&good), "truth:v1", &["true"]),
    )
    .ok();
    let o = d.docker_in(&["load"], &tar);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("layer 0 of the image has digest sha256:"),
        "{o:?}"
    );
    assert!(d.docker(&["image", "inspect", "liar:v1"]).code != 0);
    d.docker(&["rmi", "truth:v1"]).ok();
    assert_eq!(d.docker(&["images", "-q"]).ok(), "");
    assert_eq!(
        std::fs::read_dir(d.data_root.join("layers"))
            .unwrap()
            .count(),
        0
    );
    store_is_clean(&d);
}

fn load_hostile(d: &Daemon, layer: Vec<u8>) -> berth_tests::Out {
    let tar = image(&[layer], "evil:v1", &["true"]);
    d.docker_in(&["load"], &tar)
}

fn nothing_outside(d: &Daemon, canary_dir: &Path) {
    let entries: Vec<_> = std::fs::read_dir(canary_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        ["secret"],
        "only the canary's own file may be there"
    );
    assert_eq!(
        std::fs::read(canary_dir.join("secret")).unwrap(),
        b"host data"
    );
    assert_eq!(d.docker(&["images", "-q"]).ok(), "");
    assert_eq!(
        std::fs::read_dir(d.data_root.join("layers"))
            .unwrap()
            .count(),
        0
    );
    store_is_clean(d);
}

#[test]
fn breakout_via_dotdot_entry() {
    let d = Daemon::start();
    let outside = d.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"host data").unwrap();
    // From <data>/tmp/layer-x/diff, six levels up is far above the test root.
    let o = load_hostile(
        &d,
        Layer::new()
            .file("../../../../../../tmp/pwned-by-berth-test", b"x")
            .finish(),
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("points outside the layer"), "{o:?}");
    assert!(!Path::new("/tmp/pwned-by-berth-test").exists());
    let o = load_hostile(
        &d,
        Layer::new().file("../../../outside/pwned", b"x").finish(),
    );
    assert!(
        o.stderr
            .contains("layer entry \"../../../outside/pwned\" points outside the layer"),
        "{o:?}"
    );
    nothing_outside(&d, &outside);
}

#[test]
fn breakout_via_absolute_symlink() {
    let d = Daemon::start();
    let outside = d.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"host data").unwrap();
    let layer = Layer::new()
        .symlink("escape", outside.to_str().unwrap())
        .file("escape/pwned", b"x")
        .finish();
    let o = load_hostile(&d, layer);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("layer entry \"escape/pwned\" points outside the layer"),
        "{o:?}"
    );
    let layer = Layer::new()
        .symlink("up", "../../../../outside")
        .file("up/pwned", b"x")
        .finish();
    assert!(load_hostile(&d, layer)
        .stderr
        .contains("points outside the layer"));
    nothing_outside(&d, &outside);
}

#[test]
fn breakout_via_hardlink() {
    let d = Daemon::start();
    let outside = d.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"host data").unwrap();
    let layer = Layer::new()
        .hardlink("stolen", "../../../../outside/secret")
        .finish();
    let o = load_hostile(&d, layer);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("layer entry \"stolen\" points outside the layer"),
        "{o:?}"
    );
    let layer = Layer::new()
        .symlink("sym", outside.to_str().unwrap())
        .hardlink("stolen", "sym/secret")
        .finish();
    assert!(load_hostile(&d, layer)
        .stderr
        .contains("points outside the layer"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(outside.join("secret")).unwrap().nlink(),
        1,
        "no new link to the host file"
    );
    nothing_outside(&d, &outside);
}

#[test]
fn a_config_blob_that_lies_about_its_digest_is_refused() {
    let d = Daemon::start();
    let layer = Layer::new().file("a", b"x").finish();
    let tar = image(&[layer], "liar:v2", &["true"]);
    // Rewrite the config blob's content under its old name.
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(&tar[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let text = String::from_utf8_lossy(&data).into_owned();
        if text.contains("\"rootfs\"") {
            data = text
                .replace("\"Cmd\":[\"true\"]", "\"Cmd\":[\"evil\"]")
                .into_bytes();
        }
        let mut h = e.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &name, &data[..]).unwrap();
    }
    let o = d.docker_in(&["load"], &b.into_inner().unwrap());
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not the one its name says"), "{o:?}");
    assert_eq!(d.docker(&["images", "-q"]).ok(), "");
    store_is_clean(&d);
}

#[test]
fn commit_makes_an_image_of_a_containers_changes() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "--name",
        "work",
        "busybox",
        "sh",
        "-c",
        "mkdir /app && echo v1 > /app/version && rm /bin/wget",
    ])
    .ok();
    let o = d.docker(&[
        "commit",
        "-m",
        "add the app",
        "-a",
        "Ann <ann@example.org>",
        "--change",
        "CMD [\"cat\", \"/app/version\"]",
        "--change",
        "ENV STAGE=prod",
        "work",
        "app:v1",
    ]);
    assert!(o.ok().trim().starts_with("sha256:"), "{o:?}");
    assert_eq!(d.docker(&["run", "--rm", "app:v1"]).ok(), "v1\n");
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "app:v1",
            "sh",
            "-c",
            "echo $STAGE; test -e /bin/wget || echo gone"
        ])
        .ok(),
        "prod\ngone\n"
    );
    let o = d.docker(&[
        "image",
        "inspect",
        "-f",
        "{{len .RootFS.Layers}} {{.Author}} {{.Comment}}",
        "app:v1",
    ]);
    assert_eq!(o.ok().trim(), "2 Ann <ann@example.org> add the app");
    let o = d.docker(&["history", "--format", "{{.Comment}}", "app:v1"]);
    assert_eq!(o.ok().lines().next(), Some("add the app"));
    // berth's own command, from a running container (paused while it is read).
    d.docker(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo live > /state; sleep 1000",
    ])
    .ok();
    d.docker(&["exec", "live", "test", "-f", "/state"]).ok();
    let id = d
        .berth(&["commit", "live", "live:snap"])
        .ok()
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"));
    assert_eq!(
        d.docker(&["run", "--rm", "live:snap", "cat", "/state"])
            .ok(),
        "live\n"
    );
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}}", "live"])
            .ok()
            .trim(),
        "running",
        "unpaused after the commit"
    );
    let o = d.docker(&["commit", "--change", "RUN make", "live"]);
    assert!(
        o.stderr.contains("RUN is not a valid change command"),
        "{o:?}"
    );
    d.docker(&["rm", "-f", "work", "live"]).ok();
    store_is_clean(&d);
}

#[test]
fn export_then_import_round_trips_a_filesystem() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "ex",
        "busybox",
        "sh",
        "-c",
        "echo kept > /kept; sleep 1000",
    ])
    .ok();
    d.docker(&["exec", "ex", "test", "-f", "/kept"]).ok();
    let out = d.root.path().join("fs.tar");
    d.docker(&["export", "-o", out.to_str().unwrap(), "ex"])
        .ok();
    let listing = berth_tests::run(
        {
            let mut c = std::process::Command::new("tar");
            c.arg("-tf").arg(&out);
            c
        },
        None,
    );
    let names: Vec<&str> = listing.ok().lines().collect();
    assert!(
        names.contains(&"kept") && names.contains(&"bin/busybox"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("proc/") || *n == "etc/hostname"),
        "no mounts, no runtime files: {names:?}"
    );
    d.docker_in(
        &["import", "-", "fromexport:v1"],
        &std::fs::read(&out).unwrap(),
    )
    .ok();
    assert_eq!(
        d.docker(&["run", "--rm", "fromexport:v1", "cat", "/kept"])
            .ok(),
        "kept\n"
    );
    // A stopped container exports too, with berth's CLI.
    d.docker(&["stop", "-t", "0", "ex"]).ok();
    let out2 = d.root.path().join("fs2.tar");
    d.berth(&["export", "-o", out2.to_str().unwrap(), "ex"])
        .ok();
    assert!(std::fs::metadata(&out2).unwrap().len() > 1_000_000);
    d.docker(&["rm", "ex"]).ok();
}
