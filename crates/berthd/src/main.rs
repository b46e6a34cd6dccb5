//! berthd: the berth daemon.

mod api;
mod config;
mod daemon;
mod error;
mod rootless;

use anyhow::{bail, Context, Result};
use clap::Parser;
use daemon::container::Containers;
use daemon::paths::Paths;
use daemon::system::System;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

/// Raises the soft open-files limit to the hard one; never asks for more than the
/// hard limit (the host caps it) and says what it got.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (lim.current, lim.maximum) {
        if cur < max {
            let mut new = lim;
            new.current = Some(max);
            match setrlimit(Resource::Nofile, new) {
                Ok(()) => tracing::info!(
                    from = cur,
                    to = max,
                    "raised the open-files limit to the hard limit; containers inherit it"
                ),
                Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
            }
        }
    }
}

fn write_pidfile(path: &std::path::Path) -> Result<()> {
    if let Ok(old) = std::fs::read_to_string(path) {
        if let Ok(pid) = old.trim().parse::<i32>() {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                bail!(
                    "pid file found, ensure berthd is not running or delete {} (pid {pid})",
                    path.display()
                );
            }
        }
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Removes what a start created if the start fails, so that a refused start
/// leaves nothing behind.
struct Undo(Vec<std::path::PathBuf>);

impl Drop for Undo {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            if p.is_dir() {
                let _ = std::fs::remove_dir(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Creates a directory (and parents), remembering which ones were new.
fn create_dirs(dir: &std::path::Path, undo: &mut Undo) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    undo.0.extend(missing.into_iter().rev());
    Ok(())
}

/// The handle that changes the log level of a running daemon.
type LogFilter =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// SIGHUP: the configuration read again, and what dockerd reloads applied
/// (debug, log-level, live-restore, registry-mirrors, insecure-registries);
/// the rest needs a restart. A `daemon reload` event says what is in force.
fn reload(flags: &config::Flags, d: &daemon::services::Daemon, log_filter: &LogFilter) {
    let new = match config::Config::load(flags.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Error reconfiguring the daemon");
            return;
        }
    };
    use std::sync::atomic::Ordering;
    d.system.debug.store(new.debug, Ordering::Relaxed);
    d.system
        .live_restore
        .store(new.live_restore, Ordering::Relaxed);
    let level = if new.debug {
        "debug"
    } else {
        new.log_level.as_str()
    };
    let level = if level == "fatal" { "error" } else { level };
    if let Err(e) = log_filter.reload(tracing_subscriber::EnvFilter::new(format!(
        "berthd={level}"
    ))) {
        tracing::warn!(error = %e, "changing the log level");
    }
    d.images.set_registry_config(new.registries.clone());
    *d.system.labels.write().unwrap_or_else(|p| p.into_inner()) = new.labels.clone();
    d.system
        .experimental
        .store(new.experimental, Ordering::Relaxed);
    d.system
        .shutdown_timeout
        .store(new.shutdown_timeout, Ordering::Relaxed);
    d.containers
        .set_default_ulimits(new.container_defaults.ulimits.clone());
    *d.authz.write().unwrap_or_else(|p| p.into_inner()) = new.authorization_plugins.clone();
    let list = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let attrs: daemon::events::Attributes = [
        ("debug", new.debug.to_string()),
        ("live-restore", new.live_restore.to_string()),
        ("log-level", new.log_level.clone()),
        ("registry-mirrors", list(&new.registries.mirrors)),
        ("insecure-registries", list(&new.registries.insecure)),
        ("labels", list(&new.labels)),
        ("experimental", new.experimental.to_string()),
        (
            "max-concurrent-downloads",
            new.registries.max_downloads.to_string(),
        ),
        (
            "max-concurrent-uploads",
            new.registries.max_uploads.to_string(),
        ),
        ("shutdown-timeout", new.shutdown_timeout.to_string()),
        ("authorization-plugins", list(&new.authorization_plugins)),
        (
            "name",
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    d.events
        .emit("daemon", "reload", &d.system.daemon_id, attrs);
    tracing::info!(
        debug = new.debug,
        live_restore = new.live_restore,
        "configuration reloaded"
    );
}

async fn run(
    cfg: config::Config,
    flags: config::Flags,
    log_filter: LogFilter,
    rootless: Option<rootless::Rootless>,
) -> Result<()> {
    raise_nofile();
    let mut undo = Undo(Vec::new());
    // Sockets first: a daemon already serving them means this one must not touch
    // anything else.
    let listeners = api::server::bind(&cfg.hosts, cfg.tls.as_ref(), cfg.socket_gid)?;
    undo.0.extend(listeners.paths.iter().cloned());
    create_dirs(&cfg.data_root.join("containers"), &mut undo)?;
    // Only root may traverse the data root (CVE-2021-41091: setuid files in
    // container layers must not be reachable by host users).
    std::fs::set_permissions(&cfg.data_root, std::fs::Permissions::from_mode(0o710))?;
    create_dirs(&cfg.exec_root, &mut undo)?;
    std::fs::set_permissions(&cfg.exec_root, std::fs::Permissions::from_mode(0o700))?;
    write_pidfile(&cfg.pidfile)?;
    undo.0.push(cfg.pidfile.clone());

    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let hierarchy = if let Some(r) = &rootless {
        match &r.cgroup {
            // The delegated subtree, in the unified hierarchy.
            Some(cg) => {
                let h = berth_runtime::cgroups::Hierarchy::detect(
                    std::path::Path::new("/sys/fs/cgroup"),
                    &mounts,
                )
                .context("detecting cgroups")?
                .unified_only();
                let controllers = h
                    .unified
                    .as_ref()
                    .and_then(|u| {
                        std::fs::read_to_string(u.join(cg).join("cgroup.controllers")).ok()
                    })
                    .unwrap_or_default();
                tracing::info!(cgroup = %cg, controllers = %controllers.trim(), "rootless: containers get cgroups in the delegated subtree");
                h
            }
            None => {
                tracing::warn!("rootless: no delegated cgroup v2 subtree, so no cgroups: resource limits are discarded, pause is refused, stats show no figures");
                berth_runtime::cgroups::Hierarchy::none()
            }
        }
    } else {
        let h = berth_runtime::cgroups::Hierarchy::detect(
            std::path::Path::new("/sys/fs/cgroup"),
            &mounts,
        )
        .context("detecting cgroups")?;
        tracing::info!(mode = ?h.mode, "cgroups detected");
        h
    };
    if rootless.is_some() {
        // The child's network namespace starts with loopback down.
        let mut nl = berth_net::netlink::Netlink::new().context("opening netlink")?;
        if let Some(lo) = nl.link_index("lo").context("finding lo")? {
            nl.set_up(lo).context("bringing lo up")?;
        }
    }
    // dockerd's --cpu-rt-runtime: the real-time budget containers share.
    let (rt_period, rt_runtime) = cfg.cpu_rt;
    if rt_runtime > 0 {
        if !hierarchy.has_rt() {
            bail!("--cpu-rt-runtime: this kernel has no real-time group scheduling in its cgroups (cgroup v1's cpu.rt_runtime_us)");
        }
        hierarchy
            .set_rt_budget(&cfg.cgroup_parent, rt_period, rt_runtime)
            .context("giving the containers' parent cgroup its real-time budget")?;
    }

    let mut container_defaults = cfg.container_defaults.clone();
    container_defaults.rootless = rootless.is_some();
    if rootless.is_some() && cfg.userns_remap.is_some() {
        bail!("--userns-remap cannot be used by a rootless berthd: its containers already live in its user namespace");
    }
    if let Some(spec) = &cfg.userns_remap {
        let remap = daemon::userns::setup(spec).context("--userns-remap")?;
        container_defaults.userns = remap.map(|r| r.map);
    }

    let exe = std::env::current_exe().context("locating berthd")?;
    let shim = exe.with_file_name("berth-shim");
    if !shim.exists() {
        bail!("berth-shim not found next to berthd at {}", shim.display());
    }
    // Every shim runs from one sealed in-memory copy (CVE-2019-5736).
    let shim_memfd = Arc::new(
        berth_runtime::sealed::sealed_copy(&shim, "berth-shim")
            .with_context(|| format!("making a sealed copy of {}", shim.display()))?,
    );
    let mut driver = choose_driver(&cfg.data_root, cfg.storage_driver.as_deref())?;
    if rootless.is_some()
        && driver == daemon::paths::Driver::Overlay2
        && cfg.storage_driver.is_none()
        && !overlay_works_here(&cfg.data_root)
    {
        tracing::warn!("rootless: this kernel does not mount overlayfs in a user namespace; using the vfs driver (a full copy of the image per container)");
        driver = daemon::paths::Driver::Vfs;
    }
    check_storage_opts(driver, &cfg.data_root, &cfg.storage_opts)?;
    tracing::info!(driver = driver.name(), "storage driver");
    let store = Arc::new(
        berth_image::Store::open_with(&cfg.data_root, driver == daemon::paths::Driver::Overlay2)
            .context("opening the store")?,
    );
    // A rootless berthd's containers go into its delegated subtree (or get no
    // cgroup at all).
    let cgroup_parent = match &rootless {
        Some(r) => r.cgroup.clone().unwrap_or_default(),
        None => cfg.cgroup_parent.clone(),
    };
    let paths = Paths {
        driver,
        data_root: cfg.data_root.clone(),
        exec_root: cfg.exec_root.clone(),
        shim,
        shim_memfd,
        cgroup_parent: cgroup_parent.clone(),
    };
    let events = Arc::new(daemon::events::Events::default());
    let mut networks = daemon::network::Networks::open(
        &cfg.data_root,
        berth_net::nft::table_for(&cfg.data_root),
        cfg.net.clone(),
        events.clone(),
    )
    .context("loading networks")?;
    if let Some(api) = rootless.as_ref().and_then(|r| r.slirp_api.clone()) {
        networks.forward_host_ports(api);
    }
    let net = Arc::new(networks);
    net.setup().context("setting up networks")?;
    let puller = Arc::new(daemon::image::pull::Puller::new(
        store.clone(),
        cfg.registries.clone(),
    ));
    let plugin_manager = daemon::plugins::managed::Managed::open(daemon::plugins::managed::Setup {
        data_root: cfg.data_root.clone(),
        exec_root: cfg.exec_root.clone(),
        shim_memfd: paths.shim_memfd.clone(),
        cgroup_parent: (!hierarchy.is_none()).then(|| cgroup_parent.clone()),
        delegated: rootless.is_some(),
        security: container_defaults.security.clone(),
        puller: puller.clone(),
        events: events.clone(),
    })
    .map_err(|e| anyhow::anyhow!("opening the plugins: {}", e.message))?;
    let plugins = Arc::new(daemon::plugins::Plugins::new(
        cfg.plugin_dirs.clone(),
        Some(plugin_manager.clone()),
    ));
    let volumes = Arc::new(
        daemon::volume::Volumes::open(&cfg.data_root, events.clone(), plugins.clone())
            .context("opening the volumes")?,
    );
    let containers = Arc::new(Containers::new(
        store.clone(),
        paths,
        hierarchy,
        net.clone(),
        volumes.clone(),
        events.clone(),
        container_defaults,
    ));
    // Networks and volumes learn who uses them through a trait the container
    // service implements; they never import it.
    net.set_users(Arc::downgrade(&containers) as std::sync::Weak<dyn daemon::network::NetworkUsers>);
    volumes
        .set_users(Arc::downgrade(&containers) as std::sync::Weak<dyn daemon::volume::VolumeUsers>);
    // Plugins first: containers restarted now may use their volumes.
    plugin_manager.restore().await;
    containers.restore().await.context("restoring containers")?;
    let daemon_id = {
        let p = cfg.data_root.join("engine-id");
        match std::fs::read_to_string(&p) {
            Ok(s) => s.trim().to_string(),
            Err(_) => {
                let id = hex::encode(rand::random::<[u8; 16]>());
                std::fs::write(&p, &id).with_context(|| format!("writing {}", p.display()))?;
                id
            }
        }
    };
    // Started: from here on the data is kept; the sockets and pid file are removed
    // at shutdown.
    undo.0.clear();
    let images = Arc::new(daemon::image::service::Images::new(
        store.clone(),
        puller,
        events.clone(),
    ));
    images.set_users(
        Arc::downgrade(&containers) as std::sync::Weak<dyn daemon::image::service::ImageUsers>
    );
    let archive = Arc::new(daemon::archive::Archive::new(
        containers.clone(),
        store.clone(),
    ));
    let builds = Arc::new(daemon::build::Builds::new(
        store.clone(),
        containers.clone(),
        archive.clone(),
        images.clone(),
        net.clone(),
        &cfg.data_root,
    ));
    builds.start_gc(cfg.builder_gc.clone());
    let daemon = Arc::new(daemon::services::Daemon {
        plugins,
        plugin_manager: plugin_manager.clone(),
        authz: cfg.authorization_plugins.clone().into(),
        archive,
        builds,
        containers: containers.clone(),
        networks: net.clone(),
        volumes: volumes.clone(),
        images: images.clone(),
        events,
        system: System {
            containers: containers.clone(),
            images,
            volumes,
            data_root: cfg.data_root.clone(),
            debug: cfg.debug.into(),
            live_restore: cfg.live_restore.into(),
            labels: std::sync::RwLock::new(cfg.labels.clone()),
            experimental: cfg.experimental.into(),
            shutdown_timeout: cfg.shutdown_timeout.into(),
            daemon_id,
        },
    });
    for (l, tls) in listeners.tcp {
        api::server::serve_tcp(l, tls, daemon.clone());
    }
    for l in listeners.listeners {
        api::server::serve(l, daemon.clone());
    }
    if let Some(addr) = cfg.metrics_addr {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the metrics are served in plain HTTP to anyone who can reach this address");
        }
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics-addr: listening on {addr}"))?;
        api::metrics::serve(l, daemon.clone());
    }
    // The handlers before the word that we are ready: a SIGTERM sent right after it
    // must shut down cleanly, not kill the process with its bridges and rules left.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tracing::info!(hosts = ?cfg.hosts, data_root = %cfg.data_root.display(), "berthd is ready");
    sd_notify("READY=1");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&flags, &daemon, &log_filter),
        }
    }
    tracing::info!("shutting down");
    sd_notify("STOPPING=1");
    for p in &listeners.paths {
        let _ = std::fs::remove_file(p);
    }
    containers.begin_shutdown();
    if !daemon
        .system
        .live_restore
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        // Like dockerd without live-restore: running containers are stopped,
        // within dockerd's deadline; what is still running then is left to its
        // shim (the next start adopts it).
        let deadline = containers.shutdown_deadline(
            daemon
                .system
                .shutdown_timeout
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let stops = containers
            .all()
            .into_iter()
            .filter(|c| c.is_running())
            .map(|c| {
                let cs = containers.clone();
                async move {
                    if let Err(e) = cs.stop_for_shutdown(&c.id).await {
                        tracing::warn!(container = %c.id, error = %e, "stopping at shutdown");
                    }
                }
            });
        let all = futures_join_all(stops);
        match deadline {
            None => all.await,
            Some(d) => {
                if tokio::time::timeout(d, all).await.is_err() {
                    tracing::error!(seconds = d.as_secs(), "Force shutdown daemon: containers still running after the shutdown timeout");
                }
            }
        }
    }
    // Plugins after the containers that may use them.
    plugin_manager.shutdown().await;
    // Without running containers, berth's bridges and firewall table go too; they
    // are made again at the next start.
    if !containers.all().iter().any(|c| c.is_running()) {
        net.teardown();
    }
    // The parent cgroup goes too when nothing is left in it (other daemons or
    // live-restored containers may still use it).
    let root = std::path::Path::new("/sys/fs/cgroup");
    let hierarchies = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    for h in std::iter::once(root.to_path_buf()).chain(hierarchies) {
        let _ = std::fs::remove_dir(h.join(cfg.cgroup_parent.trim_matches('/')));
    }
    let _ = std::fs::remove_file(&cfg.pidfile);
    Ok(())
}

/// Tells a supervisor (systemd, or a test) about our state over NOTIFY_SOCKET.
fn sd_notify(state: &str) {
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = addr.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &addr)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify");
    }
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

fn main() -> std::process::ExitCode {
    // Nothing berthd inherited may reach a shim or a container: every descriptor
    // above stderr becomes close-on-exec before any thread or child exists.
    // (Socket activation's descriptors are taken by number later; still open.)
    if let Err(e) = berth_runtime::sys::cloexec_from(3) {
        eprintln!("berthd: marking inherited descriptors close-on-exec: {e}");
        return std::process::ExitCode::from(1);
    }
    let mut flags = config::Flags::parse();
    let rootless = match rootless::mode() {
        // Started by a user: berthd proper runs in namespaces of the user's own.
        rootless::Mode::Parent => {
            return rootless::run_parent().unwrap_or_else(|e| {
                eprintln!("berthd: {e:#}");
                std::process::ExitCode::from(1)
            })
        }
        rootless::Mode::Child(r) => match rootless::Rootless::defaults() {
            Ok(d) => {
                flags.rootless = Some(d);
                Some(r)
            }
            Err(e) => {
                eprintln!("berthd: {e:#}");
                return std::process::ExitCode::from(1);
            }
        },
        rootless::Mode::Root => None,
    };
    let validate = flags.validate;
    let cfg = match config::Config::load(flags.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            return std::process::ExitCode::from(1);
        }
    };
    // dockerd's `--validate`: the configuration, and nothing started.
    if validate {
        println!("configuration OK");
        return std::process::ExitCode::SUCCESS;
    }
    let level = if cfg.debug {
        "debug"
    } else {
        cfg.log_level.as_str()
    };
    let level = if level == "fatal" { "error" } else { level };
    // The level is reloadable (SIGHUP): the filter sits behind a handle.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, log_filter) = tracing_subscriber::reload::Layer::new(
        tracing_subscriber::EnvFilter::new(format!("berthd={level}")),
    );
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: starting the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(run(cfg, flags, log_filter, rootless)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// The storage driver: the one asked for, or overlay2 unless the data root is itself
/// on overlayfs (an overlay's upper layer cannot be), where vfs is used.
/// dockerd's storage options for the driver chosen: `overlay2.size` (or
/// `vfs.size`) needs xfs with project quotas, which berth does not set yet;
/// anything else is an unknown option, in dockerd's words.
fn check_storage_opts(
    driver: daemon::paths::Driver,
    data_root: &std::path::Path,
    opts: &[String],
) -> Result<()> {
    for o in opts {
        let (key, value) = o.split_once('=').unwrap_or((o, ""));
        let key = key.trim().to_lowercase();
        let prefix = driver.name();
        if key != format!("{prefix}.size") {
            bail!("{prefix}: unknown option {key}");
        }
        let size = berth_api::parse_size(value.trim())
            .ok_or_else(|| anyhow::anyhow!("invalid size: '{value}'"))?;
        if size <= 0 {
            continue;
        }
        let fs = daemon::system::backing_fs(data_root);
        if fs != "xfs" {
            bail!("Storage Option {key} only supported for backingFS XFS. Found {fs}");
        }
        if !daemon::container::mounts::project_quotas(data_root) {
            bail!("Storage option {key} not supported. Filesystem does not support Project Quota: the data root's xfs is not mounted with pquota");
        }
        bail!("{key}: the data root has project quotas, but berth does not set them yet");
    }
    Ok(())
}

/// Whether an overlay (with `userxattr`, as in a user namespace) can be mounted
/// on the data root's filesystem: tried once, in a scratch directory.
fn overlay_works_here(data_root: &std::path::Path) -> bool {
    let probe = data_root
        .join("tmp")
        .join(format!("overlay-probe-{}", std::process::id()));
    let ok = (|| -> std::io::Result<()> {
        for d in ["l", "u", "w", "m"] {
            std::fs::create_dir_all(probe.join(d))?;
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            probe.join("l").display(),
            probe.join("u").display(),
            probe.join("w").display()
        );
        rustix::mount::mount(
            "overlay",
            probe.join("m"),
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(std::ffi::CString::new(data)?.as_c_str()),
        )?;
        rustix::mount::unmount(probe.join("m"), rustix::mount::UnmountFlags::DETACH)?;
        Ok(())
    })()
    .is_ok();
    let _ = std::fs::remove_dir_all(&probe);
    ok
}

fn choose_driver(
    data_root: &std::path::Path,
    asked: Option<&str>,
) -> Result<daemon::paths::Driver> {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let on_overlay = rustix::fs::statfs(data_root)
        .map(|s| s.f_type == OVERLAYFS_SUPER_MAGIC)
        .with_context(|| format!("examining {}", data_root.display()))?;
    match asked {
        Some("vfs") => Ok(daemon::paths::Driver::Vfs),
        Some(_) if on_overlay => bail!(
            "the overlay2 storage driver cannot work with the data root {} on overlayfs: use --storage-driver vfs, or another data root",
            data_root.display()
        ),
        Some(_) => Ok(daemon::paths::Driver::Overlay2),
        None if on_overlay => {
            tracing::warn!(data_root = %data_root.display(), "the data root is on overlayfs, where overlay2 cannot work: using the vfs driver (a full copy of the image per container)");
            Ok(daemon::paths::Driver::Vfs)
        }
        None => Ok(daemon::paths::Driver::Overlay2),
    }
}
