//! docker cp: both directions, and the attacks on it.

use berth_tests::Daemon;

#[test]
fn copy_files_and_directories_both_ways() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "cp1",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub; echo hello > /data/a; echo deep > /data/sub/b; sleep 1000",
    ])
    .ok();
    d.docker(&["exec", "cp1", "test", "-f", "/data/sub/b"]).ok();
    let host = d.root.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    d.docker(&["cp", "cp1:/data/a", &h("a")]).ok();
    assert_eq!(std::fs::read_to_string(host.join("a")).unwrap(), "hello\n");
    d.docker(&["cp", "cp1:/data", &h("")]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("data/sub/b")).unwrap(),
        "deep\n"
    );
    std::fs::write(host.join("up.txt"), "up\n").unwrap();
    d.docker(&["cp", &h("up.txt"), "cp1:/data/"]).ok();
    assert_eq!(
        d.docker(&["exec", "cp1", "cat", "/data/up.txt"]).ok(),
        "up\n"
    );
    std::fs::create_dir_all(host.join("tree/in")).unwrap();
    std::fs::write(host.join("tree/in/f"), "f\n").unwrap();
    d.docker(&["cp", &h("tree"), "cp1:/tmp/"]).ok();
    assert_eq!(
        d.docker(&["exec", "cp1", "cat", "/tmp/tree/in/f"]).ok(),
        "f\n"
    );
    let o = d.docker(&["cp", "cp1:/nope", &h("")]);
    assert!(
        o.stderr
            .contains("Could not find the file /nope in container cp1"),
        "{o:?}"
    );
    d.docker(&["rm", "-f", "cp1"]).ok();
}

#[test]
fn breakout_via_symlinks_resolves_inside_the_container() {
    let d = Daemon::start();
    d.load_busybox();
    // A host directory the container's symlinks name by its host path.
    let canary = d.root.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    std::fs::write(canary.join("secret"), "host data").unwrap();
    let c = canary.to_str().unwrap();
    let script = format!("ln -s {c} /evil; ln -s / /rootlink; sleep 1000");
    d.docker(&["run", "-d", "--name", "sym", "busybox", "sh", "-c", &script])
        .ok();
    d.docker(&["exec", "sym", "test", "-L", "/evil"]).ok();
    let host = d.root.path().join("host");
    std::fs::create_dir(&host).unwrap();
    // Through /rootlink (-> /), the container's passwd, not the host's.
    d.docker(&["cp", "sym:/rootlink/etc/passwd", host.to_str().unwrap()])
        .ok();
    assert!(std::fs::read_to_string(host.join("passwd"))
        .unwrap()
        .contains("bob:x:1000"));
    // Through /evil (-> a host path): that path does not exist inside.
    let o = d.docker(&["cp", "sym:/evil/secret", host.to_str().unwrap()]);
    assert_ne!(o.code, 0);
    assert!(!host.join("secret").exists());
    std::fs::write(host.join("x"), "x").unwrap();
    let o = d.docker(&["cp", host.join("x").to_str().unwrap(), "sym:/evil/"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert_eq!(
        std::fs::read_dir(&canary).unwrap().count(),
        1,
        "nothing written to the host"
    );
    d.docker(&["rm", "-f", "sym"]).ok();
}

#[test]
fn breakout_via_symlink_swap_race() {
    let d = Daemon::start();
    d.load_busybox();
    let canary = d.root.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    std::fs::write(canary.join("secret"), "host data").unwrap();
    let c = canary.to_str().unwrap();
    // /swap flips between a real directory and a symlink to the host path, as fast
    // as the container can (CVE-2018-15664).
    let script = format!(
        "mkdir -p /real; echo inside > /real/secret; while true; do ln -sfn {c} /swap.tmp && mv -T /swap.tmp /swap; ln -sfn /real /swap.tmp && mv -T /swap.tmp /swap; done"
    );
    d.docker(&[
        "run", "-d", "--name", "race", "busybox", "sh", "-c", &script,
    ])
    .ok();
    let host = d.root.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("x"), "x").unwrap();
    // Each copy either lands inside the container (/swap was /real) or finds
    // nothing (/swap was the link, followed inside the container's root, where
    // the host path does not exist): never anything else.
    let (mut puts, mut gets) = (0, 0);
    for i in 0..30 {
        let o = d.docker(&["cp", host.join("x").to_str().unwrap(), "race:/swap/"]);
        if o.code == 0 {
            puts += 1;
        } else {
            // (The docker CLI says "no such directory" itself when its stat of
            // /swap/ finds no directory: before the container made it, or mid-swap.)
            assert!(
                (o.stderr.contains("Could not find the file")
                    && o.stderr.contains(" in container race"))
                    || o.stderr.trim() == "no such directory",
                "copy in, iteration {i}: {o:?}"
            );
        }
        let out = host.join(format!("got{i}"));
        let o = d.docker(&["cp", "race:/swap/secret", out.to_str().unwrap()]);
        if o.code == 0 {
            gets += 1;
            assert_eq!(
                std::fs::read_to_string(&out).unwrap(),
                "inside\n",
                "read a host file"
            );
        } else {
            assert!(
                o.stderr
                    .contains("Could not find the file /swap/secret in container race"),
                "copy out, iteration {i}: {o:?}"
            );
            assert!(!out.exists(), "a failed copy left {}", out.display());
        }
    }
    // Both states of the swap were met (30 tries at even odds), so the race ran.
    assert!(puts > 0 && puts < 30, "{puts} of 30 copies in succeeded");
    assert!(gets > 0 && gets < 30, "{gets} of 30 copies out succeeded");
    let left: Vec<_> = std::fs::read_dir(&canary)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["secret"], "the host canary directory was written to");
    assert_eq!(
        std::fs::read_to_string(canary.join("secret")).unwrap(),
        "host data"
    );
    d.docker(&["rm", "-f", "race"]).ok();
}

#[test]
fn a_planted_tar_never_runs() {
    let d = Daemon::start();
    d.load_busybox();
    let script = "rm /bin/tar; printf '#!/bin/sh\\ntouch /pwned\\n' > /bin/tar; chmod +x /bin/tar; echo data > /f; sleep 1000";
    d.docker(&["run", "-d", "--name", "trap", "busybox", "sh", "-c", script])
        .ok();
    d.docker(&["exec", "trap", "test", "-f", "/f"]).ok();
    let host = d.root.path().join("host");
    std::fs::create_dir(&host).unwrap();
    d.docker(&["cp", "trap:/f", host.to_str().unwrap()]).ok();
    std::fs::write(host.join("in"), "in").unwrap();
    d.docker(&["cp", host.join("in").to_str().unwrap(), "trap:/"])
        .ok();
    assert_eq!(d.docker(&["exec", "trap", "cat", "/in"]).ok(), "in");
    let o = d.docker(&["exec", "trap", "test", "-e", "/pwned"]);
    assert_eq!(o.code, 1, "the container's tar ran");
    d.docker(&["rm", "-f", "trap"]).ok();
}

#[test]
fn copy_with_stopped_and_created_containers() {
    let d = Daemon::start();
    d.load_busybox();
    let host = d.root.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("conf"), "setting=1\n").unwrap();
    // Into a container that never ran: it finds the file when it starts.
    d.docker(&[
        "create",
        "--name",
        "fresh",
        "busybox",
        "sh",
        "-c",
        "cat /etc/conf; echo made > /out",
    ])
    .ok();
    d.docker(&["cp", host.join("conf").to_str().unwrap(), "fresh:/etc/"])
        .ok();
    d.docker(&["start", "fresh"]).ok();
    assert_eq!(d.docker(&["wait", "fresh"]).ok().trim(), "0");
    assert_eq!(d.docker(&["logs", "fresh"]).ok(), "setting=1\n");
    // Out of the stopped container: what it wrote, and image files through a symlink.
    d.docker(&["cp", "fresh:/out", host.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "made\n");
    d.docker(&["cp", "fresh:/bin/sh", host.join("sh").to_str().unwrap()])
        .ok();
    assert!(
        std::fs::symlink_metadata(host.join("sh"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "a symlink is copied as one"
    );
    let o = d.docker(&["cp", "fresh:/etc/nothing", host.to_str().unwrap()]);
    assert!(
        o.stderr.contains("Could not find the file /etc/nothing"),
        "{o:?}"
    );
    // A stopped container's symlink to a host path does not lead to the host either.
    let canary = d.root.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    d.docker(&[
        "run",
        "--name",
        "old",
        "busybox",
        "ln",
        "-s",
        canary.to_str().unwrap(),
        "/evil",
    ])
    .ok();
    std::fs::write(host.join("x"), "x").unwrap();
    let o = d.docker(&["cp", host.join("x").to_str().unwrap(), "old:/evil/"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read_dir(&canary).unwrap().count(), 0);
    d.docker(&["rm", "fresh", "old"]).ok();
}

/// A container that never ran, of an image of several layers: cp and export read
/// its filesystem from a detached overlay of all the layers (the kernel takes them
/// one by one through fsconfig; a colon list once failed with EINVAL).
#[test]
fn cp_and_export_from_a_created_container_of_a_layered_image() {
    use berth_tests::archive::{image, Layer};
    let d = Daemon::start();
    let busybox = std::fs::read(d.busybox_archive("bb:1")).unwrap();
    d.docker_in(&["load"], &busybox).ok();
    let base = Layer::new().dir("etc").file("etc/one", b"1\n").finish();
    let top = Layer::new().file("etc/two", b"2\n").finish();
    let tar = image(&[base, top], "layered:1", &["true"]);
    d.docker_in(&["load"], &tar).ok();
    let id = d.docker(&["create", "layered:1"]).ok().trim().to_string();
    let o = d.docker(&["cp", &format!("{id}:/etc/two"), "-"]);
    assert!(o.ok().contains("2\n"), "{o:?}");
    let list = d.docker(&["export", &id]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(
        list.stdout.contains("etc/one") && list.stdout.contains("etc/two"),
        "{list:?}"
    );
}
