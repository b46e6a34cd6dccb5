//! Docker's managed plugins through the real docker CLI: `docker plugin create`
//! from a directory, `push` to Debian's docker-registry on 127.0.0.1, `install`
//! from there (privileges asked and granted), `enable`, `set`, `upgrade`,
//! `disable`, `rm`; the plugin runs as a container of its own and serves volumes
//! to containers.
//!
//! The test plugin is the legacy-plugin test program (volume_plugin.py) run by
//! the host's python3 inside the plugin's container: its rootfs holds only the
//! script and links to /usr, which the plugin config mounts read-only from the
//! host (a mount privilege the install must grant).

use berth_tests::{wait_until, Daemon, TestRegistry};
use std::path::PathBuf;

/// A plugin directory (`config.json`, `rootfs/`) for the test volume plugin;
/// `description` tells versions apart.
fn plugin_dir(description: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    for d in [
        "plugin",
        "usr",
        "data",
        "run/docker/plugins",
        "tmp",
        "proc",
        "sys",
        "dev",
        "etc",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    for l in ["lib", "lib64", "bin", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), rootfs.join(l)).unwrap();
    }
    std::fs::copy(
        berth_tests::repo_root().join("crates/berth-tests/src/volume_plugin.py"),
        rootfs.join("plugin/volume_plugin.py"),
    )
    .unwrap();
    let config = serde_json::json!({
        "Description": description,
        "Documentation": "https://docs.docker.com/engine/extend/",
        "Entrypoint": ["/usr/bin/python3", "/plugin/volume_plugin.py",
                       "/run/docker/plugins/vp.sock", "/data", "/data/calls.log"],
        "Interface": {"Socket": "vp.sock", "Types": ["docker.volumedriver/1.0"]},
        "PropagatedMount": "/data",
        "Mounts": [{"Name": "usr", "Description": "the host's python",
                    "Source": "/usr", "Destination": "/usr", "Type": "bind",
                    "Options": ["rbind", "ro"]}],
        "Env": [{"Name": "DEBUG", "Settable": ["value"], "Value": "0"},
                {"Name": "SOCKET_LINK", "Settable": ["value"], "Value": ""}],
        "Linux": {"Capabilities": ["CAP_SYS_ADMIN"]}
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

fn plugin_id(d: &Daemon, name: &str) -> String {
    d.docker(&["plugin", "inspect", "-f", "{{.Id}}", name])
        .ok()
        .trim()
        .to_string()
}

/// The processes of plugin `id`: those in its cgroup, the shim's child (no
/// shim: the shim stays outside the cgroup it makes).
fn plugin_pids(id: &str) -> Vec<i32> {
    let mark = format!("/plugin-{id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.lines().any(|l| l.ends_with(&mark)))
        })
        .collect()
}

fn volume_path(d: &Daemon, v: &str) -> PathBuf {
    PathBuf::from(
        d.docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", v])
            .ok()
            .trim(),
    )
}

#[test]
fn a_plugin_created_from_a_directory_runs_as_a_container_and_serves_volumes() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = plugin_dir("v1");
    d.docker(&["plugin", "create", "vp", dir.path().to_str().unwrap()])
        .ok();
    let ls = d.docker(&[
        "plugin",
        "ls",
        "--format",
        "{{.Name}} {{.Enabled}} {{.Description}}",
    ]);
    assert_eq!(ls.ok().trim(), "vp:latest false v1");
    let id = plugin_id(&d, "vp");
    assert_eq!(id.len(), 64);
    let pdir = d.data_root.join("plugins").join(&id);
    assert!(pdir.join("rootfs/plugin/volume_plugin.py").is_file());
    // Not enabled: not usable.
    let o = d.docker(&["volume", "create", "-d", "vp", "nope"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("plugin vp:latest found but disabled"),
        "{}",
        o.stderr
    );

    d.docker(&["plugin", "enable", "vp"]).ok();
    // Docker's filters.
    let ls = |f: &str| {
        d.docker(&["plugin", "ls", "-q", "--no-trunc", "--filter", f])
            .ok()
            .trim()
            .to_string()
    };
    assert_eq!(ls("enabled=true"), id);
    assert_eq!(ls("enabled=false"), "");
    assert_eq!(ls("capability=volumedriver"), id);
    assert_eq!(ls("capability=authz"), "");
    let o = d.docker(&["plugin", "ls", "--filter", "nope=1"]);
    assert!(o.stderr.contains("invalid filter 'nope'"), "{}", o.stderr);
    let pids = plugin_pids(&id);
    assert_eq!(pids.len(), 1, "one plugin process: {pids:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0])).unwrap();
    // Its own namespaces, Docker's capabilities plus the one it asked for.
    for ns in ["mnt", "pid", "net"] {
        assert_ne!(
            std::fs::read_link(format!("/proc/{}/ns/{ns}", pids[0])).unwrap(),
            std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(),
            "{ns} namespace"
        );
    }
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_ne!(cap_eff & (1 << 21), 0, "CAP_SYS_ADMIN was asked for");
    assert_eq!(
        cap_eff & (1 << 16),
        0,
        "CAP_SYS_MODULE was not: {cap_eff:x}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Seccomp:") && l.trim().ends_with('2')),
        "the plugin runs under a seccomp filter"
    );

    d.docker(&["volume", "create", "-d", "vp", "v1"]).ok();
    let inspect = d.docker(&["volume", "inspect", "-f", "{{.Driver}}", "v1"]);
    assert_eq!(inspect.ok().trim(), "vp:latest");
    let host = volume_path(&d, "v1");
    assert_eq!(host, pdir.join("propagated-mount/v1"));
    d.run_rm(&["-v", "v1:/v", "busybox", "sh", "-c", "echo hello > /v/f"]);
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "hello\n");
    // What the plugin mounts below its propagated mount reaches the host, and so
    // the containers: a tmpfs volume the plugin made.
    d.docker(&["volume", "create", "-d", "vp", "-o", "tmpfs=1", "mem"])
        .ok();
    let mem = volume_path(&d, "mem");
    assert!(
        mem.join(".made-by-plugin").is_file(),
        "the plugin's tmpfs is seen on the host"
    );
    let out = d.run_rm(&[
        "-v",
        "mem:/m",
        "busybox",
        "sh",
        "-c",
        "ls -a /m; grep ' /m ' /proc/mounts",
    ]);
    assert!(
        out.contains(".made-by-plugin") && out.contains("tmpfs"),
        "{out}"
    );
    d.docker(&["volume", "rm", "mem"]).ok();
    // `--volume-driver` and `--mount` volume options reach the plugin too.
    d.run_rm(&[
        "--volume-driver",
        "vp",
        "-v",
        "auto:/d",
        "busybox",
        "touch",
        "/d/x",
    ]);
    let drv = d.docker(&["volume", "inspect", "-f", "{{.Driver}}", "auto"]);
    assert_eq!(drv.ok().trim(), "vp:latest");
    let out = d.run_rm(&[
        "--mount",
        "type=volume,source=viamount,target=/d,volume-driver=vp,volume-opt=tmpfs=1",
        "busybox",
        "ls",
        "-a",
        "/d",
    ]);
    assert!(out.contains(".made-by-plugin"), "{out}");
    d.docker(&["volume", "rm", "auto", "viamount"]).ok();
    // The plugin saw the calls, with the container's ID on Mount.
    let calls = std::fs::read_to_string(pdir.join("propagated-mount/calls.log")).unwrap();
    for m in [
        "VolumeDriver.Create",
        "VolumeDriver.Mount",
        "VolumeDriver.Unmount",
    ] {
        assert!(calls.contains(m), "{m} in {calls}");
    }
    // In use by a volume: not disabled, not removed.
    let o = d.docker(&["plugin", "disable", "vp"]);
    assert!(
        o.stderr.contains("plugin vp:latest is in use"),
        "{}",
        o.stderr
    );
    let o = d.docker(&["plugin", "rm", "vp"]);
    assert_ne!(o.code, 0);
    // Settings only while disabled.
    let o = d.docker(&["plugin", "set", "vp", "DEBUG=1"]);
    assert!(
        o.stderr.contains("cannot set on an active plugin"),
        "{}",
        o.stderr
    );
    d.docker(&["volume", "rm", "v1"]).ok();
    d.docker(&["plugin", "disable", "vp"]).ok();
    wait_until("the plugin's process to go", || plugin_pids(&id).is_empty());
    d.docker(&["plugin", "set", "vp", "DEBUG=1"]).ok();
    let env = d.docker(&["plugin", "inspect", "-f", "{{json .Settings.Env}}", "vp"]);
    assert_eq!(env.ok().trim(), r#"["DEBUG=1","SOCKET_LINK="]"#);
    let o = d.docker(&["plugin", "set", "vp", "usr.source=/etc"]);
    assert!(
        o.stderr.contains("\"usr.source\" is not settable"),
        "{}",
        o.stderr
    );
    d.docker(&["plugin", "rm", "vp"]).ok();
    assert!(!pdir.exists(), "the plugin's files are gone");
    assert_eq!(d.docker(&["plugin", "ls", "-q"]).ok().trim(), "");
    // Until a second from now: the events of this second are all in.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "type=plugin",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(
        events.ok().split_whitespace().collect::<Vec<_>>(),
        ["create", "enable", "disable", "remove"]
    );
}

#[test]
fn a_volume_plugin_installed_from_a_local_registry_serves_a_volume() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/berth/vp", reg.host());
    let dir = plugin_dir("v1");
    d.docker(&["plugin", "create", &name, dir.path().to_str().unwrap()])
        .ok();
    let push = d.docker(&["plugin", "push", &name]);
    assert!(
        push.ok().contains("latest: digest: sha256:"),
        "{}",
        push.stdout
    );
    d.docker(&["plugin", "rm", &name]).ok();

    // What the plugin asks of the host, as the install shows it.
    let (code, _, body) = d.api("GET", &format!("/plugins/privileges?remote={name}"), None);
    assert_eq!(code, 200, "{body}");
    let privileges: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        privileges,
        serde_json::json!([
            {"Name": "mount", "Description": "host path to mount", "Value": ["/usr"]},
            {"Name": "capabilities", "Description": "list of additional capabilities required", "Value": ["CAP_SYS_ADMIN"]}
        ])
    );
    // Refusing them installs nothing.
    let o = d.docker_in(&["plugin", "install", &name], b"n\n");
    assert_ne!(o.code, 0);
    assert_eq!(d.docker(&["plugin", "ls", "-q"]).ok().trim(), "");
    // Accepting other privileges than asked is refused by the daemon.
    let (code, _, body) = d.api("POST", &format!("/plugins/pull?remote={name}"), Some("[]"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("incorrect privileges"), "{body}");

    let o = d.docker(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        &name,
        "DEBUG=1",
    ]);
    assert!(
        o.ok().contains(&format!("Installed plugin {name}")),
        "{}",
        o.stdout
    );
    let inspect = d.docker(&[
        "plugin",
        "inspect",
        "-f",
        "{{.Enabled}} {{.PluginReference}} {{json .Settings.Env}}",
        &name,
    ]);
    assert_eq!(
        inspect.ok().trim(),
        format!(
            "true {}/berth/vp:latest [\"DEBUG=1\",\"SOCKET_LINK=\"]",
            reg.host()
        )
    );
    d.docker(&["volume", "create", "-d", &name, "data"]).ok();
    d.run_rm(&[
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let out = d.run_rm(&["--mount", "source=data,target=/d", "busybox", "cat", "/d/f"]);
    assert_eq!(out.trim(), "kept");
    let id = plugin_id(&d, &name);
    assert_eq!(
        std::fs::read_to_string(
            d.data_root
                .join("plugins")
                .join(&id)
                .join("propagated-mount/data/f")
        )
        .unwrap(),
        "kept\n"
    );

    // Upgrade: a new version, pushed under the same name, replaces the code
    // and keeps the settings and the data.
    d.docker(&["volume", "rm", "data"]).ok();
    let v2 = plugin_dir("v2");
    d.docker(&[
        "plugin",
        "create",
        &format!("{name}:v2"),
        v2.path().to_str().unwrap(),
    ])
    .ok();
    d.docker(&["plugin", "push", &format!("{name}:v2")]).ok();
    d.docker(&["plugin", "rm", &format!("{name}:v2")]).ok();
    let o = d.docker(&[
        "plugin",
        "upgrade",
        "--grant-all-permissions",
        &name,
        &format!("{name}:v2"),
    ]);
    assert!(
        o.stderr.contains("disabled before upgrading"),
        "{}",
        o.stderr
    );
    d.docker(&["plugin", "disable", &name]).ok();
    d.docker(&[
        "plugin",
        "upgrade",
        "--grant-all-permissions",
        "--skip-remote-check",
        &name,
        &format!("{name}:v2"),
    ])
    .ok();
    let inspect = d.docker(&[
        "plugin",
        "inspect",
        "-f",
        "{{.Config.Description}} {{json .Settings.Env}}",
        &name,
    ]);
    assert_eq!(inspect.ok().trim(), "v2 [\"DEBUG=1\",\"SOCKET_LINK=\"]");
    assert!(d
        .data_root
        .join("plugins")
        .join(&id)
        .join("propagated-mount/data/f")
        .is_file());
    d.docker(&["plugin", "enable", &name]).ok();
    d.docker(&["volume", "create", "-d", &name, "again"]).ok();
    d.docker(&["volume", "rm", "again"]).ok();
    d.docker(&["plugin", "rm", "-f", &name]).ok();
    assert!(!d.data_root.join("plugins").join(&id).exists());
    // Under another name, left disabled.
    d.docker(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        "--alias",
        "mine",
        "--disable",
        &name,
    ])
    .ok();
    let ls = d.docker(&["plugin", "ls", "--format", "{{.Name}} {{.Enabled}}"]);
    assert_eq!(ls.ok().trim(), "mine:latest false");
    d.docker(&["plugin", "rm", "mine"]).ok();
}

#[test]
fn an_enabled_plugin_outlives_a_daemon_restart_and_a_crash_of_its_process() {
    let mut d = Daemon::start();
    let dir = plugin_dir("v1");
    d.docker(&["plugin", "create", "vp", dir.path().to_str().unwrap()])
        .ok();
    d.docker(&["plugin", "enable", "vp"]).ok();
    let id = plugin_id(&d, "vp");
    let first = plugin_pids(&id);
    assert_eq!(first.len(), 1);
    // Killed behind berthd's back: it is started again.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first[0]).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    wait_until("the plugin to run again", || {
        let now = plugin_pids(&id);
        now.len() == 1 && now != first
    });
    d.docker(&["volume", "create", "-d", "vp", "vol"]).ok();
    // berthd stops its plugins when it stops, and starts the enabled ones again.
    d.stop();
    assert!(plugin_pids(&id).is_empty(), "stopped with berthd");
    d.spawn();
    assert_eq!(plugin_pids(&id).len(), 1, "started with berthd");
    d.docker(&["volume", "inspect", "vol"]).ok();
    // A berthd that dies leaves the plugin to its shim; the next one adopts it.
    let before = plugin_pids(&id);
    d.kill9();
    d.spawn();
    assert_eq!(plugin_pids(&id), before, "adopted, not started twice");
    d.docker(&["volume", "inspect", "vol"]).ok();
    let o = d.docker(&["plugin", "rm", "vp"]);
    assert!(o.stderr.contains("is in use"), "{}", o.stderr);
    d.docker(&["volume", "rm", "vol"]).ok();
    d.docker(&["plugin", "rm", "-f", "vp"]).ok();
    assert!(plugin_pids(&id).is_empty());
}

#[test]
fn bad_plugin_requests_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    // No config.json.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("rootfs")).unwrap();
    let o = d.docker(&["plugin", "create", "bad", empty.path().to_str().unwrap()]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("config.json"), "{}", o.stderr);
    // A socket path that climbs out of the socket directory.
    let dir = plugin_dir("v1");
    let cfg = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["Interface"]["Socket"] = "../../x.sock".into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    let o = d.docker(&["plugin", "create", "bad", dir.path().to_str().unwrap()]);
    assert!(
        o.stderr.contains("Interface.Socket must be a file name"),
        "{}",
        o.stderr
    );
    // A plugin that never serves its socket: enable fails, it stays disabled.
    v["Interface"]["Socket"] = "vp.sock".into();
    v["Entrypoint"] = serde_json::json!(["/usr/bin/python3", "-c", "print('no socket here')"]);
    std::fs::write(&cfg, v.to_string()).unwrap();
    d.docker(&["plugin", "create", "mute", dir.path().to_str().unwrap()])
        .ok();
    let o = d.docker(&["plugin", "enable", "mute"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("did not serve vp.sock before it exited"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("no socket here"),
        "the plugin's output is told: {}",
        o.stderr
    );
    let inspect = d.docker(&["plugin", "inspect", "-f", "{{.Enabled}}", "mute"]);
    assert_eq!(inspect.ok().trim(), "false");
    let o = d.docker(&["plugin", "inspect", "nothere"]);
    assert!(
        o.stderr.contains("plugin \"nothere\" not found"),
        "{}",
        o.stderr
    );
    let o = d.docker(&["plugin", "create", "mute", dir.path().to_str().unwrap()]);
    assert!(
        o.stderr.contains("plugin mute:latest already exists"),
        "{}",
        o.stderr
    );
    d.docker(&["plugin", "rm", "mute"]).ok();
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("plugins"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "tmp")
        .collect();
    assert!(left.is_empty(), "nothing left: {left:?}");
    let tmp = d.data_root.join("plugins/tmp");
    assert!(
        !tmp.exists() || std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "no half-made plugin left"
    );
}

/// A managed authorization plugin (the legacy test plugin, run as a managed
/// one): named in `authorization-plugins` (reloaded by SIGHUP) it decides; once
/// disabled it leaves the chain, as in moby.
#[test]
fn a_managed_authorization_plugin_decides_until_disabled() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = plugin_dir("gate");
    let cfg = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    std::fs::copy(
        berth_tests::repo_root().join("crates/berth-tests/src/authz_plugin.py"),
        dir.path().join("rootfs/plugin/authz_plugin.py"),
    )
    .unwrap();
    v["Entrypoint"] = serde_json::json!([
        "/usr/bin/python3",
        "/plugin/authz_plugin.py",
        "/run/docker/plugins/gate.sock",
        "/tmp/calls.log"
    ]);
    v["Interface"] = serde_json::json!({"Socket": "gate.sock", "Types": ["docker.authz/1.0"]});
    v["PropagatedMount"] = "".into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    d.docker(&["plugin", "create", "gate", dir.path().to_str().unwrap()])
        .ok();
    d.docker(&["plugin", "enable", "gate"]).ok();
    // Not a volume driver.
    let o = d.docker(&["volume", "create", "-d", "gate", "vol"]);
    assert!(
        o.stderr
            .contains("plugin does not provide \"volumedriver\" capability"),
        "{}",
        o.stderr
    );
    std::fs::write(
        d.root.path().join("daemon.json"),
        r#"{"authorization-plugins": ["gate"]}"#,
    )
    .unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    wait_until("the plugin to decide", || {
        d.docker(&["volume", "ls"])
            .stderr
            .contains("authorization denied by plugin gate: volume listings are secret")
    });
    let o = d.docker(&["run", "--rm", "--privileged", "busybox", "true"]);
    assert!(
        o.stderr.contains(
            "authorization denied by plugin gate: privileged containers are not allowed here"
        ),
        "{o:?}"
    );
    assert_eq!(d.run_rm(&["busybox", "echo", "allowed"]), "allowed\n");
    let id = plugin_id(&d, "gate");
    let calls = std::fs::read_to_string(
        d.data_root
            .join("plugins")
            .join(&id)
            .join("rootfs/tmp/calls.log"),
    )
    .unwrap();
    assert!(calls.contains("AuthZPlugin.AuthZReq"), "{calls}");
    d.docker(&["plugin", "disable", "gate"]).ok();
    d.docker(&["volume", "ls"]).ok();
    d.docker(&["plugin", "rm", "gate"]).ok();
}

/// docker-py's plugin API (high level) against the same daemon: create from a
/// directory, configure, enable, list by state, disable, remove.
#[test]
fn docker_py_manages_plugins() {
    let d = Daemon::start();
    let dir = plugin_dir("py");
    let o = d.docker_py(&format!(
        r#"
p = client.plugins.create("pyvp", {dir:?})
p.configure({{"DEBUG": "1"}})
p.reload()
print(p.name, p.enabled, p.settings["Env"])
p.enable()
print([x.name for x in client.plugins.list()])
v = client.volumes.create("pv", driver="pyvp")
print(v.attrs["Driver"])
v.remove()
p.disable()
p.reload()
print(p.enabled)
p.remove()
print(client.plugins.list())
try:
    client.plugins.get("pyvp")
except docker.errors.NotFound as e:
    print("gone")
"#,
        dir = dir.path().to_str().unwrap()
    ));
    assert_eq!(
        o.ok(),
        "pyvp:latest False ['DEBUG=1', 'SOCKET_LINK=']\n['pyvp:latest']\npyvp:latest\nFalse\n[]\ngone\n",
        "{}",
        o.stderr
    );
}

/// A managed plugin is confined like a container, so the mount points it answers
/// must not take a container out of the plugin's directories: a path climbing
/// out with `..`, or through a symbolic link the plugin made (to /etc, say), is
/// refused and nothing of the host is bound (the symlink-exchange class of
/// CVE-2018-15664, from a plugin: the bind is also made without following any
/// link, so a link swapped in after the check fails it too).
#[test]
fn plugin_mount_points_cannot_reach_host_paths() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = plugin_dir("v1");
    d.docker(&["plugin", "create", "vp", dir.path().to_str().unwrap()])
        .ok();
    d.docker(&["plugin", "enable", "vp"]).ok();
    d.docker(&[
        "volume",
        "create",
        "-d",
        "vp",
        "-o",
        "answer=/data/../../../../../../../etc",
        "climb",
    ])
    .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "climb:/x",
        "busybox",
        "cat",
        "/x/hostname",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("climbs out of the plugin's directories"),
        "{o:?}"
    );
    d.docker(&["volume", "create", "-d", "vp", "-o", "link=/etc", "evil"])
        .ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "evil:/x",
        "busybox",
        "cat",
        "/x/hostname",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("goes through a symbolic link"), "{o:?}");
    // An ordinary volume of the same plugin still works.
    d.docker(&["volume", "create", "-d", "vp", "fine"]).ok();
    d.run_rm(&["-v", "fine:/x", "busybox", "touch", "/x/ok"]);
    for v in ["climb", "evil", "fine"] {
        d.docker(&["volume", "rm", v]).ok();
    }
    d.docker(&["plugin", "rm", "-f", "vp"]).ok();
}

/// A plugin that puts a link to a host socket where its own socket belongs
/// does not get berthd to talk to that socket: the link is never followed.
#[test]
fn a_plugin_socket_that_is_a_link_is_not_followed() {
    let d = Daemon::start();
    let trap_dir = tempfile::tempdir().unwrap();
    let trap = trap_dir.path().join("trap.sock");
    let listener = std::os::unix::net::UnixListener::bind(&trap).unwrap();
    listener.set_nonblocking(true).unwrap();
    let dir = plugin_dir("v1");
    d.docker(&["plugin", "create", "vp", dir.path().to_str().unwrap()])
        .ok();
    d.docker(&[
        "plugin",
        "set",
        "vp",
        &format!("SOCKET_LINK={}", trap.display()),
    ])
    .ok();
    let o = d.docker(&["plugin", "enable", "vp"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("a symbolic link where its socket vp.sock belongs"),
        "{o:?}"
    );
    assert!(
        listener.accept().is_err(),
        "berthd connected to the host socket the link named"
    );
    d.docker(&["plugin", "rm", "vp"]).ok();
}

/// `berth plugin`: the same commands through berth's CLI, install from a
/// registry included (privileges granted with --grant-all-permissions, refused
/// at the prompt).
#[test]
fn berth_manages_plugins() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    let dir = plugin_dir("by berth");
    d.berth(&["plugin", "create", "bp", dir.path().to_str().unwrap()])
        .ok();
    let ls = d.berth(&[
        "plugin",
        "ls",
        "--format",
        "{{.Name}} {{.Enabled}} {{.Description}}",
    ]);
    assert_eq!(ls.ok().trim(), "bp:latest false by berth");
    d.berth(&["plugin", "set", "bp", "DEBUG=1"]).ok();
    d.berth(&["plugin", "enable", "bp"]).ok();
    let id = d
        .berth(&["plugin", "inspect", "-f", "{{.Id}}", "bp"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(
        d.berth(&[
            "plugin",
            "ls",
            "-q",
            "--no-trunc",
            "--filter",
            "enabled=true"
        ])
        .ok()
        .trim(),
        id
    );
    d.berth(&["plugin", "disable", "bp"]).ok();
    d.berth(&["plugin", "rm", "bp"]).ok();
    assert_eq!(d.berth(&["plugin", "ls", "-q"]).ok().trim(), "");

    let name = format!("{}/berth/bp", reg.host());
    d.berth(&["plugin", "create", &name, dir.path().to_str().unwrap()])
        .ok();
    let push = d.berth(&["plugin", "push", &name]);
    assert!(push.ok().contains("digest: sha256:"), "{push:?}");
    d.berth(&["plugin", "rm", &name]).ok();
    let o = d.berth_in(&["plugin", "install", &name], b"n\n");
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("- mount: [/usr]"), "{o:?}");
    assert_eq!(d.berth(&["plugin", "ls", "-q"]).ok().trim(), "");
    let o = d.berth(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        &name,
        "DEBUG=2",
    ]);
    assert!(
        o.ok().contains(&format!("Installed plugin {name}")),
        "{o:?}"
    );
    let inspect = d.berth(&[
        "plugin",
        "inspect",
        "-f",
        "{{.Enabled}} {{json .Settings.Env}}",
        &name,
    ]);
    assert_eq!(inspect.ok().trim(), "true [\"DEBUG=2\",\"SOCKET_LINK=\"]");
    d.berth(&["plugin", "rm", "-f", &name]).ok();
}
