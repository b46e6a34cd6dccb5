//! Volumes, bind mounts, tmpfs and read-only roots through the real docker CLI and
//! berth: data that outlives containers, Docker's copy-up, in-use rules, prune,
//! errors for bad mounts, and host users kept out of the data root.

use berth_tests::Daemon;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn volumes(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .docker(&["volume", "ls", "-q"])
        .ok()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// An image whose `VOLUME /data` holds a file, made the way users make one.
fn image_with_volume(d: &Daemon) {
    d.docker(&[
        "run",
        "--name",
        "base",
        "busybox",
        "sh",
        "-c",
        "mkdir /data && echo seed > /data/seed && chown -R 1000:1000 /data",
    ])
    .ok();
    d.docker(&["commit", "--change", "VOLUME /data", "base", "withvol"])
        .ok();
    d.docker(&["rm", "base"]).ok();
}

#[test]
fn named_volumes_keep_data_and_are_protected_while_used() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["volume", "create", "--label", "team=a", "data"])
        .ok();
    d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo persisted > /data/f",
    ])
    .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(o.ok(), "persisted\n");
    // -v with a name that does not exist yet makes the volume.
    d.docker(&["run", "--rm", "-v", "made:/m", "busybox", "true"])
        .ok();
    assert_eq!(volumes(&d), ["data", "made"]);
    let o = d.docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Driver}} {{.Labels.team}} {{.Scope}}",
        "data",
    ]);
    assert_eq!(o.ok().trim(), "local a local");

    // In use (even by a stopped container): refused, with Docker's words.
    d.docker(&[
        "create",
        "--name",
        "user",
        "-v",
        "data:/data",
        "busybox",
        "true",
    ])
    .ok();
    let o = d.docker(&["volume", "rm", "data"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("volume is in use"), "{o:?}");
    let o = d.docker(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert_eq!(o.ok().trim(), "made");

    // Prune takes unused anonymous volumes; --all takes unused named ones too.
    d.docker(&[
        "create", "--name", "anon", "-v", "/scratch", "busybox", "true",
    ])
    .ok();
    d.docker(&["rm", "anon"]).ok(); // without -v: the anonymous volume stays, unused
    assert_eq!(volumes(&d).len(), 3);
    let o = d.docker(&["volume", "prune", "-f"]);
    assert!(o.ok().contains("Total reclaimed space"), "{o:?}");
    assert_eq!(volumes(&d), ["data", "made"]);
    d.docker(&["volume", "prune", "-f", "--all"]).ok();
    assert_eq!(volumes(&d), ["data"], "the used one stays");
    d.docker(&["rm", "user"]).ok();
    d.docker(&["volume", "rm", "data"]).ok();
    assert!(volumes(&d).is_empty());
    let o = d.docker(&["volume", "rm", "data"]);
    assert!(o.stderr.contains("no such volume"), "{o:?}");
    let o = d.docker(&["volume", "create", "-d", "nfs-plugin", "x1"]);
    assert!(o.stderr.contains("nfs-plugin"), "{o:?}");
}

#[test]
fn image_volumes_are_copied_up_removed_with_the_container_and_shared() {
    let d = Daemon::start();
    d.load_busybox();
    image_with_volume(&d);
    d.docker(&["run", "-d", "--name", "holder", "withvol", "sleep", "300"])
        .ok();
    // The new anonymous volume starts with the image's file, owner kept.
    let o = d.docker(&[
        "exec",
        "holder",
        "sh",
        "-c",
        "cat /data/seed; stat -c %u /data/seed",
    ]);
    assert_eq!(o.ok(), "seed\n1000\n");
    let vol = d
        .docker(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Name}}{{end}}",
            "holder",
        ])
        .ok()
        .trim()
        .to_string();
    assert_eq!(vol.len(), 64);
    // --volumes-from shares it, read-write or read-only.
    d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder",
        "busybox",
        "sh",
        "-c",
        "echo shared > /data/new",
    ])
    .ok();
    assert_eq!(
        d.docker(&["exec", "holder", "cat", "/data/new"]).ok(),
        "shared\n"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder:ro",
        "busybox",
        "touch",
        "/data/x",
    ]);
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    // nocopy: an empty volume.
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,dst=/data,volume-nocopy",
        "withvol",
        "ls",
        "-A",
        "/data",
    ]);
    assert_eq!(o.ok(), "");
    // rm -v takes the anonymous volume; --rm does too.
    d.docker(&["rm", "-f", "-v", "holder"]).ok();
    assert!(volumes(&d).is_empty(), "{:?}", volumes(&d));
    d.docker(&["run", "--rm", "withvol", "true"]).ok();
    assert!(volumes(&d).is_empty(), "{:?}", volumes(&d));
}

#[test]
fn bind_mounts_read_only_files_and_errors() {
    let d = Daemon::start();
    d.load_busybox();
    let host = d.root.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("hello"), b"from the host\n").unwrap();
    let spec = format!("{}:/mnt:ro", host.display());
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /mnt/hello; touch /mnt/x",
    ]);
    assert_eq!(o.stdout, "from the host\n");
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    assert!(!host.join("x").exists());
    // Read-write, both ways.
    let rw = format!("{}:/mnt", host.display());
    d.docker(&[
        "run",
        "--rm",
        "-v",
        &rw,
        "busybox",
        "sh",
        "-c",
        "echo back > /mnt/back",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(host.join("back")).unwrap(),
        "back\n"
    );
    // A single file.
    let file = format!("{}:/etc/greeting:ro", host.join("hello").display());
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "-v",
            &file,
            "busybox",
            "cat",
            "/etc/greeting"
        ])
        .ok(),
        "from the host\n"
    );
    // -v makes a missing host directory, as Docker does; --mount refuses it.
    let missing = d.root.path().join("made-by-v");
    d.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", missing.display()),
        "busybox",
        "true",
    ])
    .ok();
    assert!(missing.is_dir());
    let gone = d.root.path().join("not-there");
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/m", gone.display()),
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains(&format!(
            "bind source path does not exist: {}",
            gone.display()
        )),
        "{o:?}"
    );
    // --mount with options, as inspect shows it.
    d.docker(&[
        "create",
        "--name",
        "mm",
        "--mount",
        &format!("type=bind,source={},target=/data,readonly", host.display()),
        "busybox",
        "true",
    ])
    .ok();
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Source}} {{.Destination}} {{.RW}} {{.Propagation}}{{end}}",
        "mm",
    ]);
    assert_eq!(
        o.ok().trim(),
        format!("bind {} /data false rprivate", host.display())
    );
    // Bad specifications are named.
    for (args, want) in [
        (vec!["-v", "/a:/b:rx"], "invalid mode: rx"),
        (vec!["-v", "/a:relative"], "must be absolute"),
        (
            vec!["-v", "/x:/dup", "-v", "/y:/dup"],
            "Duplicate mount point: /dup",
        ),
        (vec!["--mount", "type=npipe,target=/x"], "npipe"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args.iter().copied());
        a.extend(["busybox", "true"]);
        let o = d.docker(&a);
        assert_ne!(o.code, 0, "{args:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
    }
    assert!(volumes(&d).is_empty(), "a refused create leaves no volume");
}

#[test]
fn read_only_roots_and_tmpfs_limits() {
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/run",
        "busybox",
        "sh",
        "-c",
        "echo ok > /run/f && cat /run/f; touch /etc/x; touch /tmp/x",
    ]);
    assert_eq!(o.stdout, "ok\n");
    assert_eq!(
        o.stderr.matches("Read-only file system").count(),
        2,
        "{o:?}"
    );
    // /etc/hosts and friends stay writable, as in Docker.
    d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        "echo '10.0.0.9 extra' >> /etc/hosts",
    ])
    .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:size=1m",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/t/big bs=1M count=2",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("No space left on device"), "{o:?}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "busybox",
        "stat",
        "-c",
        "%a",
        "/t",
    ]);
    assert_eq!(o.ok().trim(), "1770");
    // noexec by default, as Docker's --tmpfs.
    let o = d.docker(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t",
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /t/b && /t/b true",
    ]);
    assert_ne!(o.code, 0);
    let o = d.docker(&["run", "--rm", "--tmpfs", "/t:size=lots", "busybox", "true"]);
    assert!(o.stderr.contains("invalid tmpfs size"), "{o:?}");
}

#[test]
fn diff_lists_added_changed_and_deleted() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "--name",
        "ch",
        "busybox",
        "sh",
        "-c",
        "echo new > /added; echo x >> /etc/passwd; rm /bin/sync",
    ])
    .ok();
    let o = d.docker(&["diff", "ch"]);
    let out = o.ok();
    for want in ["A /added", "C /etc/passwd", "D /bin/sync"] {
        assert!(out.lines().any(|l| l == want), "{want} in {out}");
    }
}

#[test]
fn local_driver_options_mount_a_tmpfs_volume() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=2m",
        "tv",
    ])
    .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "tv:/v",
        "busybox",
        "sh",
        "-c",
        "grep ' /v ' /proc/mounts; dd if=/dev/zero of=/v/f bs=1M count=3",
    ]);
    assert!(o.stdout.contains("tmpfs"), "{o:?}");
    assert!(o.stderr.contains("No space left on device"), "{o:?}");
    // Unmounted when no running container uses it.
    let data = d.data_root.join("volumes/tv/_data");
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(data.to_str().unwrap()));
    assert!(!mounted);
    let o = d.docker(&["volume", "create", "--opt", "colour=red", "bad1"]);
    assert!(o.stderr.contains("colour"), "{o:?}");
}

#[test]
fn host_users_cannot_reach_volumes_or_containers() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["volume", "create", "secret"]).ok();
    d.docker(&[
        "run",
        "--name",
        "c1",
        "-v",
        "secret:/s",
        "busybox",
        "sh",
        "-c",
        "echo hidden > /s/f; echo hidden > /f",
    ])
    .ok();
    // Only berth's own modes may stand between a host user and the data: open up
    // the test's temporary directory above the data root.
    std::fs::set_permissions(d.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = d
        .docker(&["inspect", "-f", "{{.Id}}", "c1"])
        .ok()
        .trim()
        .to_string();
    let as_user = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups", "--"])
            .args(args)
            .output()
            .unwrap()
    };
    let data = d.data_root.display().to_string();
    for path in [
        format!("{data}/volumes"),
        format!("{data}/volumes/secret/_data"),
        format!("{data}/containers"),
        format!("{data}/containers/{id}/upper"),
    ] {
        assert!(
            !as_user(&["ls", &path]).status.success(),
            "{path} is listable"
        );
    }
    for file in [
        format!("{data}/volumes/secret/_data/f"),
        format!("{data}/containers/{id}/upper/f"),
    ] {
        assert!(
            !as_user(&["cat", &file]).status.success(),
            "{file} is readable"
        );
    }
    // Root still reads them: the files are there.
    assert_eq!(
        std::fs::read_to_string(format!("{data}/volumes/secret/_data/f")).unwrap(),
        "hidden\n"
    );
    std::fs::set_permissions(d.root.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn berth_cli_volumes_and_mounts() {
    let d = Daemon::start();
    d.load_busybox();
    assert_eq!(d.berth(&["volume", "create", "bv"]).ok().trim(), "bv");
    let o = d.berth(&["volume", "ls"]);
    assert!(o.ok().starts_with("DRIVER"), "{o:?}");
    assert!(o.ok().contains("bv"));
    let o = d.berth(&["volume", "ls", "-q", "--filter", "name=nomatch"]);
    assert_eq!(o.ok(), "", "filters reach the daemon");
    d.berth(&[
        "run",
        "--rm",
        "-v",
        "bv:/d",
        "busybox",
        "sh",
        "-c",
        "echo via-berth > /d/f",
    ])
    .ok();
    let o = d.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=bv,dst=/d,readonly",
        "busybox",
        "sh",
        "-c",
        "cat /d/f; touch /d/g",
    ]);
    assert_eq!(o.stdout, "via-berth\n");
    assert!(o.stderr.contains("Read-only file system"));
    let o = d.berth(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/w:size=1m",
        "busybox",
        "sh",
        "-c",
        "touch /w/ok && touch /no",
    ]);
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    let o = d.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,colour=red",
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("colour"), "{o:?}");
    d.berth(&["volume", "rm", "bv"]).ok();
    let o = d.berth(&["volume", "inspect", "bv"]);
    assert_ne!(o.code, 0);
    d.berth(&["volume", "create", "pv"]).ok();
    let o = d.berth(&["volume", "prune", "--all"]);
    assert!(o.ok().contains("Deleted Volumes:\npv\n"), "{o:?}");
    assert!(o.ok().contains("Total reclaimed space"), "{o:?}");
}

#[test]
fn sizes_in_ps_inspect_and_system_df() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&["run", "--name", "sz", "-v", "dfvol:/v", "busybox", "sh", "-c", "dd if=/dev/zero of=/big bs=1k count=300 2>/dev/null; dd if=/dev/zero of=/v/f bs=1k count=100 2>/dev/null"]).ok();
    let o = d.docker(&["ps", "-a", "-s", "--format", "{{.Size}}"]);
    assert!(o.ok().starts_with("307kB (virtual "), "{o:?}");
    let o = d.docker(&["inspect", "-s", "-f", "{{.SizeRw}}", "sz"]);
    assert_eq!(o.ok().trim(), "307200");
    let o = d.docker(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Size}}",
    ]);
    let out = o.ok();
    assert!(out.contains("Containers 1 307.2kB"), "{out}");
    assert!(out.contains("Local Volumes 1 102.4kB"), "{out}");
    assert!(out.contains("Images 1 "), "{out}");
    let o = d.docker(&["system", "df", "-v"]);
    assert!(o.ok().contains("dfvol"), "{o:?}");
}

#[test]
fn on_an_overlayfs_data_root_berthd_uses_vfs() {
    // The data root on an overlay mount of the test's own.
    let mut d = Daemon::start_prepared(&[], |data| {
        let base = data.parent().unwrap().join("ovl");
        for sub in ["lower", "upper", "work"] {
            std::fs::create_dir_all(base.join(sub)).unwrap();
        }
        std::fs::create_dir_all(data).unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            base.join("lower").display(),
            base.join("upper").display(),
            base.join("work").display()
        );
        let ok = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(data)
            .status()
            .unwrap();
        assert!(ok.success());
    });
    d.load_busybox();
    let o = d.docker(&[
        "info",
        "--format",
        "{{.Driver}} {{index .DriverStatus 0 1}}",
    ]);
    assert_eq!(o.ok().trim(), "vfs overlayfs");
    assert!(d.log().contains("using the vfs driver"), "{}", d.log());
    // Containers run, with volumes, and diff and commit work on the full copy.
    d.docker(&[
        "run",
        "--name",
        "vv",
        "-v",
        "vol:/data",
        "busybox",
        "sh",
        "-c",
        "echo hi > /added; echo x >> /etc/passwd; rm /bin/sync; echo data > /data/f",
    ])
    .ok();
    let o = d.docker(&["diff", "vv"]);
    let out = o.ok();
    for want in ["A /added", "C /etc/passwd", "D /bin/sync"] {
        assert!(out.lines().any(|l| l == want), "{want} in {out}");
    }
    d.docker(&["commit", "vv", "committed"]).ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "committed",
        "sh",
        "-c",
        "cat /added; test -e /bin/sync || echo gone",
    ]);
    assert_eq!(o.ok(), "hi\ngone\n");
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "-v",
            "vol:/data",
            "busybox",
            "cat",
            "/data/f"
        ])
        .ok(),
        "data\n"
    );
    let o = d.docker(&["inspect", "-f", "{{.GraphDriver.Name}}", "vv"]);
    assert_eq!(o.ok().trim(), "vfs");
    // cp out of the stopped container reads its copy.
    let o = d.docker(&["cp", "vv:/added", "-"]);
    assert!(o.stdout.contains("hi"), "{o:?}");
    d.docker(&["rm", "-v", "vv"]).ok();
    d.stop();
    let _ = Command::new("umount").arg(&d.data_root).status();
}

#[test]
fn an_unknown_storage_driver_is_refused() {
    let out = Command::new(berth_tests::bin("berthd"))
        .args([
            "--storage-driver",
            "zfs",
            "-H",
            "unix:///nonexistent/x.sock",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"zfs\" is not supported"),
        "{out:?}"
    );
}

#[test]
fn storage_opt_size_needs_project_quotas() {
    // This host's filesystems have no project quotas (its kernel has none), so the
    // option is refused with Docker's words, and nothing is created.
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&[
        "run",
        "--rm",
        "--storage-opt",
        "size=10m",
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
        ),
        "{o:?}"
    );
    let o = d.docker(&["create", "--storage-opt", "colour=red", "busybox", "true"]);
    assert!(o.stderr.contains("Unknown option colour"), "{o:?}");
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
}

#[test]
fn a_failed_start_leaves_no_volume_mounted() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "tfv",
    ])
    .ok();
    let o = d.docker(&["run", "--rm", "-v", "tfv:/v", "busybox", "/no/such/program"]);
    assert_ne!(o.code, 0);
    let data = d.data_root.join("volumes/tfv/_data");
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(data.to_str().unwrap()));
    assert!(!mounted, "the volume's tmpfs was unmounted");
}

/// A legacy volume plugin (Docker's plugin protocol on a unix socket in the
/// daemon's plugin directory, here a Python one the test runs): `volume create -d`
/// has it make the volume with the options given, a container gets the plugin's
/// mount point (Mount and Unmount with the container's id), `--volume-driver`
/// makes a run's named volume there, `volume rm` has it remove it; a plugin that
/// is not there is named in Docker's words.
#[test]
fn a_legacy_volume_plugin_serves_volumes() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let root = tmp.path().join("volumes");
    let log = tmp.path().join("calls.log");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let script = berth_tests::repo_root().join("crates/berth-tests/src/volume_plugin.py");
    let _plugin = berth_tests::KillOnDrop(
        std::process::Command::new("python3")
            .arg(&script)
            .arg(plugins.join("testvol.sock"))
            .arg(&root)
            .arg(&log)
            .spawn()
            .unwrap(),
    );
    berth_tests::wait_until("the plugin's socket", || {
        plugins.join("testvol.sock").exists()
    });
    let d = Daemon::start_with(&["--plugin-dir", plugins.to_str().unwrap()]);
    d.load_busybox();
    let calls = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    d.docker(&[
        "volume",
        "create",
        "-d",
        "testvol",
        "--opt",
        "color=blue",
        "pv",
    ])
    .ok();
    let create = calls()
        .into_iter()
        .find(|c| c["method"] == "VolumeDriver.Create")
        .unwrap();
    assert_eq!(
        create["req"],
        serde_json::json!({"Name": "pv", "Opts": {"color": "blue"}})
    );
    let o = d.docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Driver}} {{.Mountpoint}}",
        "pv",
    ]);
    assert_eq!(o.ok(), format!("testvol {}\n", root.join("pv").display()));
    let id = d
        .docker(&[
            "run",
            "-d",
            "-v",
            "pv:/data",
            "busybox",
            "sh",
            "-c",
            "echo from-container > /data/f",
        ])
        .ok()
        .trim()
        .to_string();
    assert_eq!(d.docker(&["wait", &id]).ok().trim(), "0");
    assert_eq!(
        std::fs::read_to_string(root.join("pv/f")).unwrap(),
        "from-container\n"
    );
    berth_tests::wait_until("the unmount", || {
        calls()
            .iter()
            .any(|c| c["method"] == "VolumeDriver.Unmount")
    });
    let ids = |m: &str| -> Vec<String> {
        calls()
            .iter()
            .filter(|c| c["method"] == m)
            .map(|c| c["req"]["ID"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(ids("VolumeDriver.Mount"), vec![id.clone()]);
    assert_eq!(ids("VolumeDriver.Unmount"), vec![id.clone()]);
    // --volume-driver: the run's named volume is the plugin's.
    d.run_rm(&[
        "--volume-driver",
        "testvol",
        "-v",
        "auto:/x",
        "busybox",
        "touch",
        "/x/made",
    ]);
    assert!(root.join("auto/made").exists());
    let o = d.docker(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(o.ok().trim(), r#"["local","testvol"]"#);
    d.docker(&["rm", &id]).ok();
    d.docker(&["volume", "rm", "pv", "auto"]).ok();
    assert!(calls()
        .iter()
        .any(|c| c["method"] == "VolumeDriver.Remove" && c["req"]["Name"] == "pv"));
    let o = d.docker(&["volume", "create", "-d", "nosuchplugin", "x1"]);
    assert!(
        o.stderr.contains(
            "error looking up volume plugin nosuchplugin: plugin \"nosuchplugin\" not found"
        ),
        "{o:?}"
    );
}

/// A host directory made a shared mount point for the test, unmounted (with
/// whatever was mounted below it) when dropped.
struct SharedMount(tempfile::TempDir);

impl SharedMount {
    fn new() -> SharedMount {
        use rustix::mount::{mount_bind, mount_change, MountPropagationFlags};
        let dir = tempfile::tempdir().unwrap();
        mount_bind(dir.path(), dir.path()).unwrap();
        mount_change(dir.path(), MountPropagationFlags::SHARED).unwrap();
        SharedMount(dir)
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.0.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// `bind-propagation`: with `rshared` what the container mounts below the bind
/// reaches the host, with `rslave` what the host mounts reaches the container,
/// with the default (`rprivate`) neither, as with Docker and runc.
#[test]
fn bind_propagation_reaches_across_as_asked() {
    let d = Daemon::start();
    d.load_busybox();
    let src = SharedMount::new();
    let s = src.0.path().to_str().unwrap().to_string();
    let run = |name: &str, propagation: &str| {
        let mut m = format!("type=bind,source={s},target=/s");
        if !propagation.is_empty() {
            m.push_str(&format!(",bind-propagation={propagation}"));
        }
        d.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--cap-add",
            "SYS_ADMIN",
            "--mount",
            &m,
            "busybox",
            "sleep",
            "300",
        ])
        .ok();
    };
    let mount_inside = |name: &str, dir: &str| {
        d.docker(&[
            "exec",
            name,
            "sh",
            "-c",
            &format!("mkdir -p /s/{dir} && mount -t tmpfs t /s/{dir} && touch /s/{dir}/inside"),
        ])
        .ok();
    };
    run("shared", "rshared");
    run("private", "");
    run("slave", "rslave");
    mount_inside("shared", "a");
    assert!(
        src.0.path().join("a/inside").is_file(),
        "rshared: the container's mount reaches the host"
    );
    mount_inside("private", "b");
    assert!(
        !src.0.path().join("b/inside").exists(),
        "rprivate: the container's mount stays inside"
    );
    // The host mounts below the source: the slave sees it, the private one not.
    let host_dir = src.0.path().join("h");
    std::fs::create_dir(&host_dir).unwrap();
    rustix::mount::mount(
        "t",
        &host_dir,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    std::fs::write(host_dir.join("from-host"), "x").unwrap();
    let sees = |name: &str| {
        d.docker(&["exec", name, "ls", "/s/h"])
            .ok()
            .contains("from-host")
    };
    assert!(
        sees("slave"),
        "rslave: the host's mount reaches the container"
    );
    assert!(sees("shared"), "rshared: both ways");
    assert!(!sees("private"), "rprivate: the host's mount stays outside");
    mount_inside("slave", "c");
    assert!(
        !src.0.path().join("c/inside").exists(),
        "rslave: the container's mount stays inside"
    );
    d.docker(&["rm", "-f", "shared", "private", "slave"]).ok();
    // A source that does not propagate cannot be bound so that it would: dockerd's
    // refusal.
    // (A mount point of its own, made private.)
    let priv_dir = SharedMount::new();
    rustix::mount::mount_change(
        priv_dir.0.path(),
        rustix::mount::MountPropagationFlags::PRIVATE,
    )
    .unwrap();
    let p = priv_dir.0.path().to_str().unwrap();
    for (prop, words) in [
        ("rshared", "a shared mount"),
        ("rslave", "a shared or slave mount"),
    ] {
        let o = d.docker(&[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,source={p},target=/s,bind-propagation={prop}"),
            "busybox",
            "true",
        ]);
        assert!(
            o.stderr
                .contains(&format!("path {p} is mounted on {p} but it is not {words}")),
            "{o:?}"
        );
    }
}

/// `--mount volume-subpath=`: only that directory of the volume is mounted; a
/// subpath that is missing, or reached through a link a container planted in
/// the volume (to /etc, say), is refused.
#[test]
fn volume_subpaths_mount_a_directory_of_the_volume_and_no_link() {
    let d = Daemon::start();
    d.load_busybox();
    d.run_rm(&[
        "-v",
        "sp:/d",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo in-sub > /d/sub/f && ln -s /etc /d/link",
    ]);
    let mount = |sub: &str| format!("type=volume,source=sp,target=/x,volume-subpath={sub}");
    assert_eq!(
        d.run_rm(&["--mount", &mount("sub"), "busybox", "cat", "/x/f"]),
        "in-sub\n"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &mount("link"),
        "busybox",
        "cat",
        "/x/hostname",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("goes through a symbolic link"), "{o:?}");
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &mount("missing"),
        "busybox",
        "true",
    ]);
    assert!(o.stderr.contains("cannot access path"), "{o:?}");
    // berth reads the same `--mount` fields, labels and driver options too.
    let out = d.berth(&[
        "run",
        "--rm",
        "--mount",
        &mount("sub"),
        "busybox",
        "cat",
        "/x/f",
    ]);
    assert_eq!(out.ok(), "in-sub\n");
    d.berth(&[
        "run", "--rm", "--mount",
        "type=volume,source=lbl,target=/x,volume-label=team=a,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
        "busybox", "true",
    ])
    .ok();
    let v = d.docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Labels.team}} {{.Options.type}}",
        "lbl",
    ]);
    assert_eq!(v.ok().trim(), "a tmpfs");
    d.docker(&["volume", "rm", "sp", "lbl"]).ok();
}
