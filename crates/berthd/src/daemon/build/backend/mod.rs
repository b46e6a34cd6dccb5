//! berth-build's backend in berthd: a RUN step is a container made by the
//! container service from the step's state (held as a temporary image while it
//! runs), so that it gets every defence and option of `docker run`; its changes
//! become a layer in the store.

use super::request::BuildRequest;
use crate::daemon::archive::Archive;
use crate::daemon::container::attach::AttachRequest;
use crate::daemon::container::Containers;
use crate::daemon::container::WaitCondition;
use crate::daemon::image::service::Images;
use berth_build::backend::{
    say, Backend, Layer, Output, RunMount, RunResult, RunStep, Sharing, Snapshot, View,
};
use berth_image::Store;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use tokio::io::AsyncReadExt;

mod session;

/// What the build service's steps use, shared by its builds.
pub struct Parts {
    pub store: Arc<Store>,
    pub containers: Arc<Containers>,
    pub archive: Arc<Archive>,
    pub images: Arc<Images>,
    pub networks: Arc<crate::daemon::network::Networks>,
    /// `<data-root>/build`.
    pub dir: PathBuf,
    /// `sharing=locked` caches in use, and `private` ones.
    pub cache_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Temporary images of running steps: how many steps use each, and whether a
    /// step made it (an image that was there before is never removed).
    pub temp_images: Mutex<HashMap<String, (usize, bool)>>,
    /// Woken after every build: the builder's garbage collection runs then
    /// (dockerd's `builder.gc`).
    pub gc_wake: tokio::sync::Notify,
}

impl Parts {
    /// The state as an image for a step's container.
    fn hold_image(&self, config: &[u8], layers: &[Layer]) -> Result<String, String> {
        let mut held = self.temp_images.lock().unwrap_or_else(|p| p.into_inner());
        let (id, created) = self
            .store
            .insert_built(config, layers, &[])
            .map_err(|e| e.to_string())?;
        held.entry(id.clone())
            .and_modify(|e| e.0 += 1)
            .or_insert((1, created));
        Ok(id)
    }

    /// A step is done with its image: the last one removes it, if a step made it.
    fn release_image(&self, id: &str) {
        let mut held = self.temp_images.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = held.get_mut(id) else { return };
        e.0 -= 1;
        if e.0 == 0 {
            let owned = e.1;
            held.remove(id);
            if owned {
                if let Err(err) = self.store.remove_if_unused(id) {
                    tracing::warn!(image = %id, error = %err, "removing a build step's image");
                }
            }
        }
    }
}

pub struct Steps {
    builds: Arc<Parts>,
    scratch: PathBuf,
    host: berth_api::HostConfig,
    extra_hosts: Vec<String>,
    auth: HashMap<String, berth_registry::auth::Credentials>,
    /// The client's session (a BuildKit client's build): its secrets.
    session: Option<super::sessions::Session>,
}

/// A state's filesystem on the host: one layer's directory as it is, or a
/// read-only overlay of several (unmounted when dropped).
pub struct OverlayView {
    path: PathBuf,
    mounted: bool,
}

impl View for OverlayView {
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OverlayView {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH)
            {
                tracing::warn!(path = %self.path.display(), error = %e, "unmounting a build view");
            }
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

fn overlay(lower: &[PathBuf], upper: Option<(&Path, &Path)>, target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    let mut opts = format!(
        "lowerdir={}",
        lower
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    // In a user namespace (rootless) overlayfs keeps its attributes in user.*.
    if berth_runtime::in_user_namespace() {
        opts.push_str(",userxattr");
    }
    let mut flags = rustix::mount::MountFlags::empty();
    match upper {
        Some((u, w)) => opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        )),
        None => flags |= rustix::mount::MountFlags::RDONLY,
    }
    let data = std::ffi::CString::new(opts).map_err(|_| "a path holds a NUL byte".to_string())?;
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(|e| format!("mounting an overlay on {}: {e}", target.display()))
}

/// What a step's mounts hold while it runs: cache locks, mounted views and
/// tmpfs, agent relays.
struct Held {
    _locks: Vec<tokio::sync::OwnedMutexGuard<()>>,
    _overlays: Vec<OverlayView>,
    _tasks: Vec<AbortOnDrop<()>>,
}

/// Relays each connection to the agent socket to the client's agent, through the
/// session's `SSH/ForwardAgent` stream.
async fn forward_agent(
    listener: tokio::net::UnixListener,
    session: super::sessions::Session,
    id: String,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((conn, _)) = listener.accept().await {
        let session = session.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let Ok((tx, mut rx)) = session
                .channel
                .bidi::<berth_buildkit::proto::BytesMessage, berth_buildkit::proto::BytesMessage>(
                    "/moby.sshforward.v1.SSH/ForwardAgent",
                    &[("buildkit.ssh.id", id)],
                )
                .await
            else {
                return;
            };
            let (mut r, mut w) = conn.into_split();
            let up = async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0
                        || tx
                            .send(berth_buildkit::proto::BytesMessage {
                                data: buf[..n].to_vec(),
                            })
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            };
            let down = async move {
                while let Ok(Some(m)) = rx.next().await {
                    if w.write_all(&m.data).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        });
    }
}

/// A task aborted when its handle goes.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Removes a step's container and temporary image however the step ends (a
/// cancelled build included).
struct StepGuard {
    builds: Arc<Parts>,
    container: Option<String>,
    image: Option<String>,
}

impl StepGuard {
    async fn cleanup(&mut self) {
        if let Some(c) = self.container.take() {
            if let Err(e) = self.builds.containers.remove(&c, true, true).await {
                tracing::warn!(container = %c, error = %e, "removing a build step's container");
            }
        }
        if let Some(i) = self.image.take() {
            self.builds.release_image(&i);
        }
    }
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        if self.container.is_some() || self.image.is_some() {
            let mut rest = StepGuard {
                builds: self.builds.clone(),
                container: self.container.take(),
                image: self.image.take(),
            };
            tokio::spawn(async move { rest.cleanup().await });
        }
    }
}

/// An I/O failure, with what was being done and to which path.
fn io_err<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> String + 'a {
    move |e| format!("{what} {}: {e}", path.display())
}

/// Gives `path` the owner and mode a mount asked for.
fn own(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err("chown", path))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(io_err("chmod", path))
}

/// A bind mount of a step, as the container service takes it.
fn bind(source: &Path, target: &str, readonly: bool) -> serde_json::Value {
    serde_json::json!({ "Type": "bind", "Source": source, "Target": target, "ReadOnly": readonly })
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(src)?;
    if m.file_type().is_symlink() {
        let t = std::fs::read_link(src)?;
        let _ = std::os::unix::fs::symlink(t, dst);
    } else if m.is_dir() {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
    } else if m.is_file() {
        std::fs::copy(src, dst)?;
    }
    Ok(())
}

/// The mount points a step's mounts made in its writable layer (the targets, and
/// their parents, that its state did not have): removed before the layer is
/// read, as BuildKit removes its mount stubs, so that they do not land in images.
fn mount_stubs(layers: &berth_build::rootfs::Layers<'_>, mounts: &[RunMount]) -> Vec<String> {
    let mut stubs = Vec::new();
    for m in mounts {
        let target = match m {
            RunMount::Bind { target, .. }
            | RunMount::Cache { target, .. }
            | RunMount::Tmpfs { target, .. }
            | RunMount::Secret { target, .. }
            | RunMount::Ssh { target, .. } => target,
        };
        let mut path = String::new();
        for part in target.split('/').filter(|p| !p.is_empty()) {
            path.push('/');
            path.push_str(part);
            if layers.lstat(&path).is_none() && !stubs.contains(&path) {
                stubs.push(path.clone());
            }
        }
    }
    // Deepest first.
    stubs.sort_by_key(|s| std::cmp::Reverse(s.matches('/').count()));
    stubs
}

/// Removes the stubs that are still empty from the writable layer `upper`. Each
/// is reached from `upper` by descriptors, never through a symlink: the step's
/// process could have replaced a parent with a link to a host path (BuildKit's
/// CVE-2024-23652 deleted host files that way).
fn remove_stubs(upper: &Path, stubs: &[String]) {
    use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
    let Ok(root) = rustix::fs::open(
        upper,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    for stub in stubs {
        let rel = stub.trim_start_matches('/');
        let (parent, name) = rel.rsplit_once('/').unwrap_or((".", rel));
        let Ok(dir) = rustix::fs::openat2(
            &root,
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) else {
            continue;
        };
        let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            // rmdir fails on a directory that is not empty: what the step wrote
            // there stays.
            rustix::fs::FileType::Directory => {
                let _ = rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR);
            }
            rustix::fs::FileType::RegularFile if st.st_size == 0 => {
                let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
            }
            _ => {}
        }
    }
}

/// Files the runtime binds into every container.
const RUNTIME_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// Removes the directory `dir` from the writable layer when it is only a copy of
/// the image's (empty, not opaque, same mode and owner): what a step's mount
/// points left, not what it changed.
fn drop_unchanged_dir(upper: &Path, layers: &berth_build::rootfs::Layers<'_>, dir: &str) {
    use std::os::unix::fs::MetadataExt;
    let Some((_, below)) = layers.lstat(dir).filter(|(_, m)| m.is_dir()) else {
        return;
    };
    let Ok(root) = rustix::fs::open(
        upper,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return;
    };
    let name = dir.trim_start_matches('/');
    if name.contains('/') {
        return;
    }
    let Ok(st) = rustix::fs::statat(&root, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else {
        return;
    };
    let same = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        && st.st_mode & 0o7777 == below.mode() & 0o7777
        && st.st_uid == below.uid()
        && st.st_gid == below.gid();
    let opaque = rustix::fs::lgetxattr(
        upper.join(name),
        berth_image::extract::opaque_xattr(),
        &mut [0u8; 4],
    )
    .is_ok();
    if same && !opaque {
        // Fails, and keeps it, if the step put anything there.
        let _ = rustix::fs::unlinkat(&root, name, rustix::fs::AtFlags::REMOVEDIR);
    }
}

impl Steps {
    pub fn new(
        builds: Arc<Parts>,
        req: &BuildRequest,
        scratch: PathBuf,
        session: Option<super::sessions::Session>,
    ) -> Steps {
        let host = berth_api::HostConfig {
            memory: req.memory,
            cpu_shares: req.cpu_shares,
            cpuset_cpus: req.cpuset_cpus.clone(),
            cpu_period: req.cpu_period,
            cpu_quota: req.cpu_quota,
            shm_size: req.shm_size,
            ulimits: (!req.ulimits.is_empty()).then(|| req.ulimits.clone()),
            ..Default::default()
        };
        let mut host = host;
        if req.memswap != 0 {
            host.other
                .insert("MemorySwap".into(), serde_json::json!(req.memswap));
        }
        Steps {
            builds,
            scratch,
            host,
            extra_hosts: req.extra_hosts.clone(),
            auth: req.auth.clone(),
            session,
        }
    }

    fn cache_dir(&self, id: &str) -> PathBuf {
        let h = berth_image::sha256_hex(id.as_bytes());
        self.builds.dir.join("cache").join(&h[..32])
    }

    /// The host side of the step's mounts, as the container service takes them,
    /// and the locks and overlays held while it runs.
    async fn mounts(&self, mounts: &[RunMount]) -> Result<(Vec<serde_json::Value>, Held), String> {
        let mut out = Vec::new();
        let mut locks = Vec::new();
        let mut tasks = Vec::new();
        let mut overlays = Vec::new();
        for (i, m) in mounts.iter().enumerate() {
            match m {
                RunMount::Bind {
                    source,
                    target,
                    readonly,
                } => {
                    let src = if *readonly {
                        source.clone()
                    } else if source.is_dir() {
                        // Writes land in a scratch layer and are thrown away.
                        let base = self
                            .scratch
                            .join(format!("rw-{i}-{:08x}", rand::random::<u32>()));
                        let (u, w, t) =
                            (base.join("upper"), base.join("work"), base.join("merged"));
                        for d in [&u, &w] {
                            std::fs::create_dir_all(d).map_err(io_err("creating", d))?;
                        }
                        overlay(std::slice::from_ref(source), Some((&u, &w)), &t)?;
                        overlays.push(OverlayView {
                            path: t.clone(),
                            mounted: true,
                        });
                        t
                    } else {
                        let copy = self
                            .scratch
                            .join(format!("rw-{i}-{:08x}", rand::random::<u32>()));
                        std::fs::copy(source, &copy).map_err(io_err("copying to", &copy))?;
                        copy
                    };
                    out.push(bind(&src, target, *readonly));
                }
                RunMount::Cache {
                    id,
                    target,
                    sharing,
                    uid,
                    gid,
                    mode,
                    seed,
                    readonly,
                } => {
                    let lock = {
                        let mut l = self
                            .builds
                            .cache_locks
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        l.entry(id.clone()).or_default().clone()
                    };
                    let mut dir = self.cache_dir(id);
                    match sharing {
                        Sharing::Shared => {}
                        Sharing::Locked => locks.push(lock.lock_owned().await),
                        Sharing::Private => match lock.try_lock_owned() {
                            Ok(g) => locks.push(g),
                            // In use: this step gets a cache of its own.
                            Err(_) => dir = self.scratch.join(format!("cache-{i}")),
                        },
                    }
                    if !dir.exists() {
                        let tmp = dir.with_extension("new");
                        let _ = std::fs::remove_dir_all(&tmp);
                        match seed {
                            Some(s) => copy_tree(s, &tmp)
                                .map_err(|e| format!("seeding cache {id}: {e}"))?,
                            None => {
                                std::fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?
                            }
                        }
                        own(&tmp, *uid, *gid, *mode)?;
                        let parent = dir.parent().expect("has a parent");
                        std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
                        std::fs::rename(&tmp, &dir).map_err(io_err("renaming to", &dir))?;
                    }
                    out.push(bind(&dir, target, *readonly));
                }
                RunMount::Secret {
                    data,
                    target,
                    uid,
                    gid,
                    mode,
                } => {
                    // On a tmpfs of its own, gone with the step: never on disk.
                    let dir = self
                        .scratch
                        .join(format!("secret-{i}-{:08x}", rand::random::<u32>()));
                    std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
                    let opts = std::ffi::CString::new("size=4m,mode=0700").expect("no NUL");
                    rustix::mount::mount(
                        "tmpfs",
                        &dir,
                        "tmpfs",
                        rustix::mount::MountFlags::NOSUID
                            | rustix::mount::MountFlags::NODEV
                            | rustix::mount::MountFlags::NOEXEC,
                        opts.as_c_str(),
                    )
                    .map_err(|e| format!("mounting a tmpfs for a secret: {e}"))?;
                    overlays.push(OverlayView {
                        path: dir.clone(),
                        mounted: true,
                    });
                    let file = dir.join("secret");
                    std::fs::write(&file, data).map_err(io_err("writing", &file))?;
                    own(&file, *uid, *gid, *mode)?;
                    out.push(bind(&file, target, true));
                }
                RunMount::Ssh {
                    id,
                    target,
                    uid,
                    gid,
                    mode,
                } => {
                    let session = self
                        .session
                        .clone()
                        .ok_or_else(|| format!("no SSH key {id:?} forwarded from the client"))?;
                    let dir = self
                        .scratch
                        .join(format!("ssh-{i}-{:08x}", rand::random::<u32>()));
                    std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
                    let sock = dir.join("agent.sock");
                    let listener =
                        tokio::net::UnixListener::bind(&sock).map_err(io_err("binding", &sock))?;
                    own(&sock, *uid, *gid, *mode)?;
                    tasks.push(AbortOnDrop(tokio::spawn(forward_agent(
                        listener,
                        session,
                        id.clone(),
                    ))));
                    out.push(bind(&sock, target, false));
                }
                RunMount::Tmpfs { target, size } => {
                    let mut v = serde_json::json!({ "Type": "tmpfs", "Target": target });
                    if let Some(s) = size {
                        v["TmpfsOptions"] = serde_json::json!({ "SizeBytes": s });
                    }
                    out.push(v);
                }
            }
        }
        Ok((
            out,
            Held {
                _locks: locks,
                _overlays: overlays,
                _tasks: tasks,
            },
        ))
    }
}

/// Reads the multiplexed output of a step, passes it on, keeps its last lines.
async fn relay_output(mut r: tokio::io::DuplexStream, out: Output, id: usize) -> Vec<String> {
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let mut pending = String::new();
    let mut header = [0u8; 8];
    loop {
        if r.read_exact(&mut header).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut buf = vec![0u8; len];
        if r.read_exact(&mut buf).await.is_err() {
            break;
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let _ = out.send(berth_build::backend::Event::Log {
            id,
            text: text.clone(),
        });
        pending.push_str(&text);
        while let Some(p) = pending.find('\n') {
            let line: String = pending.drain(..=p).collect();
            tail.push_back(line.trim_end().to_string());
            if tail.len() > 5 {
                tail.pop_front();
            }
        }
    }
    if !pending.trim().is_empty() {
        tail.push_back(pending.trim_end().to_string());
    }
    tail.into_iter().collect()
}

impl Backend for Steps {
    type View = OverlayView;

    async fn image(
        &self,
        name: &str,
        pull: bool,
        out: &Output,
    ) -> Result<(String, Snapshot), String> {
        let store = &self.builds.store;
        let snap = |i: berth_image::Image| {
            (
                i.id.clone(),
                Snapshot {
                    config: i.config,
                    layers: i.layers,
                },
            )
        };
        if !pull {
            match store.resolve(name) {
                Ok(i) => return Ok(snap(i)),
                Err(berth_image::StoreError::NoSuchImage(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        say(out, format!("Pulling {name}\n"));
        let registry = crate::daemon::image::pull::registry_of(name);
        let creds = match self.auth.get(&registry) {
            Some(c) => Some(c.clone()),
            None => self.session_credentials(&registry).await,
        };
        let mut rx = self
            .builds
            .images
            .pull(name, "", None, creds)
            .await
            .map_err(|e| format!("failed to resolve source metadata for {name}: {e}"))?;
        while let Some(chunk) = rx.recv().await {
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
                if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                    return Err(format!("failed to resolve source metadata for {name}: {e}"));
                }
            }
        }
        store.resolve(name).map(snap).map_err(|e| e.to_string())
    }

    async fn run(
        &self,
        state: &Snapshot,
        step: &RunStep,
        out: &Output,
    ) -> Result<RunResult, String> {
        if step.insecure {
            return Err(
                "security.insecure is not allowed: berthd does not grant it to builds".into(),
            );
        }
        let b = &self.builds;
        let config = serde_json::to_vec(&state.config).map_err(|e| e.to_string())?;
        let image = b.hold_image(&config, &state.layers)?;
        let mut guard = StepGuard {
            builds: b.clone(),
            container: None,
            image: Some(image.clone()),
        };
        let (mounts, _held) = self.mounts(&step.mounts).await?;
        let mut hc = self.host.clone();
        hc.network_mode = match step.network.as_str() {
            // The default bridge, or no network where the daemon has none.
            "default" | "" if b.networks.find("bridge").is_none() => "none".into(),
            "default" | "" => "bridge".into(),
            n => n.into(),
        };
        if !mounts.is_empty() {
            hc.other
                .insert("Mounts".into(), serde_json::Value::Array(mounts));
        }
        if !self.extra_hosts.is_empty() {
            hc.other
                .insert("ExtraHosts".into(), serde_json::json!(self.extra_hosts));
        }
        let req = berth_api::ContainerCreateRequest {
            config: berth_api::ContainerConfig {
                image: image.clone(),
                cmd: Some(step.args.clone()),
                entrypoint: Some(Vec::new()),
                env: Some(step.env.clone()),
                user: step.user.clone(),
                working_dir: step.workdir.clone(),
                attach_stdout: true,
                attach_stderr: true,
                ..Default::default()
            },
            host_config: Some(hc),
            networking_config: None,
        };
        let created = b.containers.create(None, req).map_err(|e| e.to_string())?;
        let id = created.id;
        guard.container = Some(id.clone());
        let short: String = id.chars().take(12).collect();
        say(out, format!(" ---> Running in {short}\n"));
        let session = b
            .containers
            .attach(
                &id,
                AttachRequest {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let (mine, theirs) = tokio::io::duplex(64 * 1024);
        // The relays end with the step, also when the build is dropped.
        let _relay = AbortOnDrop(tokio::spawn(session.relay(theirs)));
        let mut reader = AbortOnDrop(tokio::spawn(relay_output(mine, out.clone(), step.id)));
        let wait = b
            .containers
            .wait(&id, WaitCondition::NextExit)
            .map_err(|e| e.to_string())?;
        // A start runs to its end even if the build is dropped meanwhile (the
        // guard's removal then waits for it and kills what it started).
        let starting = {
            let containers = b.containers.clone();
            let id = id.clone();
            tokio::spawn(async move { containers.start(&id).await.map_err(|e| e.to_string()) })
        };
        starting.await.map_err(|e| e.to_string())??;
        let status = wait.await;
        let tail = (&mut reader.0).await.unwrap_or_default();
        let mut layer = None;
        if status.status_code == 0 {
            let dirs = self.layer_dirs(state);
            let layers = berth_build::rootfs::Layers { dirs: &dirs };
            let mut stubs = mount_stubs(&layers, &step.mounts);
            // The files the runtime binds over (/etc/hosts and the like), where the
            // image had none, are stubs too; /etc then stays only if the step
            // changed it.
            for f in RUNTIME_FILES {
                if layers.lstat(f).is_none() {
                    stubs.push(f.to_string());
                }
            }
            let upper = b.containers.paths().writable(&id);
            remove_stubs(&upper, &stubs);
            drop_unchanged_dir(&upper, &layers, "/etc");
            let tar = b.archive.layer_of(&id).await.map_err(|e| e.to_string())?;
            let path = self.scratch.join(format!("run-{short}.tar"));
            std::fs::write(&path, tar).map_err(io_err("writing", &path))?;
            layer = Some(self.add_layer(&path).await);
            let _ = std::fs::remove_file(&path);
        }
        guard.cleanup().await;
        say(out, format!("Removing intermediate container {short}\n"));
        Ok(RunResult {
            exit_code: status.status_code,
            tail,
            layer: layer.transpose()?.flatten(),
        })
    }

    fn layer_dirs(&self, state: &Snapshot) -> Vec<PathBuf> {
        berth_image::lower_dirs_of(&self.builds.store, &state.layers)
    }

    fn view(&self, state: &Snapshot) -> Result<OverlayView, String> {
        let dirs = self.layer_dirs(state);
        match dirs.len() {
            0 => {
                let p = self
                    .scratch
                    .join(format!("empty-{:08x}", rand::random::<u32>()));
                std::fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
                Ok(OverlayView {
                    path: p,
                    mounted: false,
                })
            }
            1 => Ok(OverlayView {
                path: dirs[0].clone(),
                mounted: false,
            }),
            _ => {
                let p = self
                    .scratch
                    .join(format!("view-{:08x}", rand::random::<u32>()));
                overlay(&dirs, None, &p)?;
                Ok(OverlayView {
                    path: p,
                    mounted: true,
                })
            }
        }
    }

    fn scratch(&self) -> &Path {
        &self.scratch
    }

    async fn add_layer(&self, tar: &Path) -> Result<Option<Layer>, String> {
        let store = self.builds.store.clone();
        let tar = tar.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let f =
                std::fs::File::open(&tar).map_err(|e| format!("opening {}: {e}", tar.display()))?;
            store
                .add_layer(std::io::BufReader::new(f))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        const METHOD: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
        let Some(s) = self.session.as_ref().filter(|s| s.serves(METHOD)) else {
            return Ok(None);
        };
        let req = berth_buildkit::proto::GetSecretRequest {
            id: id.to_string(),
            annotations: Default::default(),
        };
        match s
            .channel
            .unary::<_, berth_buildkit::proto::GetSecretResponse>(METHOD, &[], &req)
            .await
        {
            Ok(r) => Ok(Some(r.data)),
            // NotFound: the client has no such secret.
            Err(berth_buildkit::grpc::Error::Status { code: 5, .. }) => Ok(None),
            Err(e) => Err(format!("secret {id}: {e}")),
        }
    }

    async fn ssh_agent(&self, id: &str) -> Result<bool, String> {
        const METHOD: &str = "/moby.sshforward.v1.SSH/CheckAgent";
        let Some(s) = self.session.as_ref().filter(|s| s.serves(METHOD)) else {
            return Ok(false);
        };
        let req = berth_buildkit::proto::CheckAgentRequest { id: id.to_string() };
        Ok(s.channel
            .unary::<_, berth_buildkit::proto::CheckAgentResponse>(METHOD, &[], &req)
            .await
            .is_ok())
    }

    async fn fetch(&self, url: &str, dest: &Path) -> Result<Option<u64>, String> {
        super::remote::download(url, dest).await
    }

    async fn clone_git(
        &self,
        url: &str,
        dest: &Path,
        keep_git_dir: bool,
    ) -> Result<PathBuf, String> {
        super::remote::clone(url, dest, keep_git_dir).await
    }

    fn cache_get(&self, key: &str) -> Option<(Vec<u8>, Vec<Layer>)> {
        match self.builds.store.cache_get(key) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(key, error = %e, "reading the build cache");
                None
            }
        }
    }

    fn cache_put(&self, key: &str, config: &[u8], layers: &[Layer]) -> Result<(), String> {
        self.builds
            .store
            .cache_put(key, config, layers)
            .map_err(|e| e.to_string())
    }

    fn commit(&self, config: &[u8], layers: &[Layer], tags: &[String]) -> Result<String, String> {
        self.builds
            .store
            .insert_built(config, layers, tags)
            .map(|(id, _)| id)
            .map_err(|e| e.to_string())
    }
}
