//! The `docker run` options about privileges, namespaces, devices and kernel
//! knobs: checked at create with Docker's words, and turned into the container's
//! spec at start.

use super::record::Record;
use super::Containers;
use crate::error::{ApiError, ApiResult};
use berth_api::{DeviceMapping, HostConfig};
use berth_runtime::caps;
use berth_runtime::shimproto::{IPCNS_FD, PIDNS_FD, USERNS_FD};
use berth_runtime::spec::{Device, MountKind, MountSpec, NsSource, Spec};
use std::os::fd::{OwnedFd, RawFd};

/// The highest capability number this kernel knows.
pub fn cap_last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// A capability name as the client gave it, in Docker's spelling (`CAP_` and
/// upper case), or `ALL`.
fn normalize_cap(name: &str) -> ApiResult<String> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if caps::from_name(&full).is_none() {
        return Err(ApiError::invalid(format!("unknown capability: \"{full}\"")));
    }
    Ok(full)
}

/// The capabilities of the container's processes, applied in Docker's order
/// (moby's TweakCapabilities): `--privileged` gives all; `--cap-add ALL` all but
/// the dropped ones; `--cap-drop ALL` only the added ones; otherwise the default
/// set without the dropped ones, with the added ones.
pub fn capabilities(hc: &HostConfig) -> ApiResult<Vec<u8>> {
    let all = caps::all(cap_last_cap());
    if hc.privileged {
        return Ok(all);
    }
    let adds = hc
        .cap_add
        .iter()
        .flatten()
        .map(|c| normalize_cap(c))
        .collect::<ApiResult<Vec<_>>>()?;
    let drops = hc
        .cap_drop
        .iter()
        .flatten()
        .map(|c| normalize_cap(c))
        .collect::<ApiResult<Vec<_>>>()?;
    let bit = |n: &String| caps::from_name(n);
    let added: Vec<u8> = adds.iter().filter_map(bit).collect();
    let dropped: Vec<u8> = drops.iter().filter_map(bit).collect();
    let mut out: Vec<u8> = if adds.iter().any(|c| c == "ALL") {
        all.into_iter().filter(|c| !dropped.contains(c)).collect()
    } else if drops.iter().any(|c| c == "ALL") {
        added
    } else {
        caps::docker_default()
            .into_iter()
            .filter(|c| !dropped.contains(c))
            .chain(added)
            .collect()
    };
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A namespace mode: "" (the default), "private"-like words, "host", or
/// "container:<name or id>".
enum Mode<'a> {
    Private,
    Host,
    Container(&'a str),
    None,
}

fn mode<'a>(what: &str, value: &'a str, allowed: &[&str]) -> ApiResult<Mode<'a>> {
    if let Some(c) = value.strip_prefix("container:") {
        if allowed.contains(&"container") && !c.is_empty() {
            return Ok(Mode::Container(c));
        }
    } else if allowed.contains(&value) || value.is_empty() {
        return Ok(match value {
            "host" => Mode::Host,
            "none" => Mode::None,
            _ => Mode::Private,
        });
    }
    Err(ApiError::invalid(format!("invalid {what} mode: {value}")))
}

/// The namespaced kernel knobs Docker lets a container set (moby's
/// ValidateSysctl), and whether the namespace they live in is the container's.
fn check_sysctl(key: &str, hc: &HostConfig) -> ApiResult<()> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let refuse = |why: &str| {
        Err(ApiError::invalid(format!(
            "sysctl \"{key}\" is not allowed{why}"
        )))
    };
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        if hc.ipc_mode == "host" || hc.ipc_mode.starts_with("container:") {
            return refuse(" when the IPC namespace is not the container's own");
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if hc.network_mode == "host" || hc.network_mode.starts_with("container:") {
            return refuse(" in host network namespace");
        }
        return Ok(());
    }
    if key == "kernel.domainname" || key == "kernel.hostname" {
        if hc.uts_mode == "host" {
            return refuse(" in the host's UTS namespace");
        }
        if key == "kernel.hostname" {
            return refuse(": use --hostname");
        }
        return Ok(());
    }
    refuse("")
}

/// `--device-cgroup-rule`: `type major:minor access`, with `*` for any number.
fn check_cgroup_rule(rule: &str) -> ApiResult<()> {
    let bad = || ApiError::invalid(format!("invalid device cgroup rule format: '{rule}'"));
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let [kind, nums, access] = parts[..] else {
        return Err(bad());
    };
    if !["a", "b", "c"].contains(&kind) {
        return Err(bad());
    }
    let (maj, min) = nums.split_once(':').ok_or_else(bad)?;
    let num = |n: &str| n == "*" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !num(maj) || !num(min) {
        return Err(bad());
    }
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(bad());
    }
    Ok(())
}

/// `--device HOST[:CONTAINER][:PERMS]`, as the API carries it: the host path must
/// be a device node or a directory of them.
fn resolve_device(d: &DeviceMapping) -> ApiResult<Vec<(Device, String)>> {
    let perms = if d.cgroup_permissions.is_empty() {
        "rwm"
    } else {
        d.cgroup_permissions.as_str()
    };
    if perms.len() > 3 || !perms.chars().all(|c| "rwm".contains(c)) {
        return Err(ApiError::invalid(format!(
            "invalid device permissions {perms:?} for {}: use r, w and m",
            d.path_on_host
        )));
    }
    let inside = if d.path_in_container.is_empty() {
        d.path_on_host.as_str()
    } else {
        d.path_in_container.as_str()
    };
    if !inside.starts_with('/') || inside.split('/').any(|c| c == "..") {
        return Err(ApiError::invalid(format!(
            "invalid device path in the container: {inside:?}"
        )));
    }
    let gather = |e: std::io::Error| {
        ApiError::invalid(format!(
            "error gathering device information while adding custom device \"{}\": {}",
            d.path_on_host,
            e.to_string()
                .split(" (os error")
                .next()
                .unwrap_or("")
                .to_lowercase()
        ))
    };
    let meta = std::fs::metadata(&d.path_on_host).map_err(gather)?;
    let mut out = Vec::new();
    if meta.is_dir() {
        for (host, node) in host_devices(std::path::Path::new(&d.path_on_host)) {
            let node = Device {
                host_path: Some(host.clone()),
                ..node
            };
            let rel = host
                .strip_prefix(&d.path_on_host)
                .unwrap_or(&host)
                .display()
                .to_string();
            let path = format!(
                "{}/{}",
                inside.trim_end_matches('/'),
                rel.trim_start_matches('/')
            );
            out.push((Device { path, ..node }, perms.to_string()));
        }
    } else {
        let node = device_of(&meta).ok_or_else(|| {
            ApiError::invalid(format!(
                "error gathering device information while adding custom device \"{}\": not a device node",
                d.path_on_host
            ))
        })?;
        out.push((
            Device {
                path: inside.to_string(),
                host_path: Some(d.path_on_host.clone().into()),
                ..node
            },
            perms.to_string(),
        ));
    }
    Ok(out)
}

fn device_of(meta: &std::fs::Metadata) -> Option<Device> {
    Device::from_metadata(meta)
}

/// The device nodes below `dir`, as moby's HostDevices walks /dev: symlinks are
/// not followed, and the directories of pseudo-filesystems are skipped.
fn host_devices(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Device)> {
    const SKIP: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() {
            if !SKIP.contains(&e.file_name().to_string_lossy().as_ref()) {
                out.extend(host_devices(&e.path()));
            }
        } else if let Some(d) = device_of(&meta) {
            // /dev/console is the container's terminal, never the host's.
            if e.path() != std::path::Path::new("/dev/console") {
                out.push((e.path(), d));
            }
        }
    }
    out
}

/// The v1 (and hybrid's v2) hierarchies of this host, as a container mounts
/// them: named after their mount point, with their controllers.
fn cgroup_mounts(h: &berth_runtime::cgroups::Hierarchy) -> Vec<berth_runtime::spec::CgroupMount> {
    use berth_runtime::cgroups::Mode;
    if h.mode == Mode::V2 {
        return Vec::new();
    }
    let known: Vec<String> = std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    let mut out = Vec::new();
    for (point, opts) in &h.v1 {
        let Some(name) = point.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let controllers: Vec<&str> = opts
            .split(',')
            .filter(|o| o.starts_with("name=") || known.iter().any(|k| k == o))
            .collect();
        if controllers.is_empty() {
            continue;
        }
        let options = if controllers.iter().all(|c| c.starts_with("name=")) {
            format!("none,{}", controllers.join(","))
        } else {
            controllers.join(",")
        };
        out.push(berth_runtime::spec::CgroupMount {
            name,
            fstype: "cgroup".into(),
            options,
        });
    }
    if let Some(u) = &h.unified {
        if let Some(name) = u.file_name() {
            out.push(berth_runtime::spec::CgroupMount {
                name: name.to_string_lossy().into_owned(),
                fstype: "cgroup2".into(),
                options: String::new(),
            });
        }
    }
    out
}

/// A block device's numbers, for the per-device I/O options.
fn block_device(path: &str) -> ApiResult<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ApiError::invalid(format!("invalid device path {path:?}: {e}")))?;
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_block_device() {
        return Err(ApiError::invalid(format!(
            "invalid device path {path:?}: not a block device"
        )));
    }
    Ok((
        rustix::fs::major(meta.rdev()),
        rustix::fs::minor(meta.rdev()),
    ))
}

/// What Docker on Linux accepts but discards, or what this host cannot apply,
/// each with Docker's words: the create answer's warnings.
pub(super) fn warnings(hc: &HostConfig, h: &berth_runtime::cgroups::Hierarchy) -> Vec<String> {
    let mut w = Vec::new();
    if hc.kernel_memory > 0 {
        w.push("Specifying a kernel memory limit is deprecated and will be removed in a future release.".into());
    }
    if hc.cpu_count > 0 {
        w.push("linux does not support CPU count. Count discarded.".into());
    }
    if hc.cpu_percent > 0 {
        w.push("linux does not support CPU percent. Percent discarded.".into());
    }
    if hc.io_maximum_iops > 0 {
        w.push("linux does not support IO maximum IOps. IOMaximumIOps discarded.".into());
    }
    if hc.io_maximum_bandwidth > 0 {
        w.push("linux does not support IO maximum bandwidth. IOMaximumBandwidth discarded.".into());
    }
    let v1_memory = h.mode != berth_runtime::cgroups::Mode::V2;
    if hc.memory_swappiness.is_some_and(|s| s >= 0) && !v1_memory {
        w.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".into());
    }
    if hc.oom_kill_disable == Some(true) && !v1_memory {
        w.push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".into());
    }
    if hc
        .blkio_weight_device
        .as_ref()
        .is_some_and(|v| !v.is_empty())
        && !h.has_blkio_weight_device()
    {
        w.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".into());
    }
    if !h.has_blkio_throttle() {
        for (list, what) in [
            (&hc.blkio_device_read_bps, "BPS Block I/O read limit"),
            (&hc.blkio_device_write_bps, "BPS Block I/O write limit"),
            (&hc.blkio_device_read_iops, "IOPs Block I/O read limit"),
            (&hc.blkio_device_write_iops, "IOPs Block I/O write limit"),
        ] {
            if list.as_ref().is_some_and(|v| !v.is_empty()) {
                w.push(format!("Your kernel does not support {what} or the cgroup is not mounted. {what} discarded."));
            }
        }
    }
    w
}

/// Checks the options at create, so that a bad one is refused then, in Docker's
/// words, rather than at start.
pub(super) fn check(hc: &HostConfig) -> ApiResult<()> {
    capabilities(hc)?;
    // `--gpus`: no device driver exists here, as Docker says without a GPU
    // runtime (its words, with Go's formatting of the capability lists).
    if let Some(reqs) = hc.other.get("DeviceRequests").and_then(|v| v.as_array()) {
        if let Some(r) = reqs.first() {
            let driver = r.get("Driver").and_then(|d| d.as_str()).unwrap_or("");
            let caps: Vec<String> = r
                .get("Capabilities")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .map(|set| {
                    let names: Vec<&str> = set
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|n| n.as_str())
                        .collect();
                    format!("[{}]", names.join(" "))
                })
                .collect();
            return Err(ApiError::internal(format!(
                "could not select device driver \"{driver}\" with capabilities: [{}]",
                caps.join(" ")
            )));
        }
    }
    mode("PID", &hc.pid_mode, &["host", "container"])?;
    mode(
        "IPC",
        &hc.ipc_mode,
        &["host", "private", "shareable", "none", "container"],
    )?;
    mode("UTS", &hc.uts_mode, &["host"])?;
    mode("cgroup namespace", &hc.cgroupns_mode, &["host", "private"])?;
    match hc.userns_mode.as_str() {
        "" | "host" => {}
        other => {
            return Err(ApiError::not_implemented(format!(
                "berth does not support user namespace mode {other:?} yet (only host)"
            )))
        }
    }
    match hc.runtime.as_str() {
        "" | "runc" | "io.containerd.runc.v2" => {}
        other => {
            return Err(ApiError::invalid(format!(
                "unknown or invalid runtime name: {other}"
            )))
        }
    }
    match hc.isolation.as_str() {
        "" | "default" => {}
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid isolation: {other:?} - Linux only supports 'default'"
            )))
        }
    }
    if hc.uts_mode == "host" && hc.network_mode.starts_with("container:") {
        return Err(ApiError::invalid(
            "conflicting options: UTS mode host and sharing another container's network",
        ));
    }
    for key in hc.sysctls.iter().flatten().map(|(k, _)| k) {
        check_sysctl(key, hc)?;
    }
    if hc.shm_size < 0 {
        return Err(ApiError::invalid("SHM size can not be less than 0"));
    }
    if !(-1000..=1000).contains(&hc.oom_score_adj) {
        return Err(ApiError::invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        )));
    }
    for d in hc.devices.iter().flatten() {
        resolve_device(d)?;
    }
    for r in hc.device_cgroup_rules.iter().flatten() {
        check_cgroup_rule(r)?;
    }
    if let Some(s) = hc.memory_swappiness {
        if s != -1 && !(0..=100).contains(&s) {
            return Err(ApiError::invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    for d in hc.blkio_weight_device.iter().flatten() {
        block_device(&d.path)?;
        if !(10..=1000).contains(&d.weight) {
            return Err(ApiError::invalid(format!(
                "invalid weight for device {}: {} (10 to 1000)",
                d.path, d.weight
            )));
        }
    }
    for list in [
        &hc.blkio_device_read_bps,
        &hc.blkio_device_write_bps,
        &hc.blkio_device_read_iops,
        &hc.blkio_device_write_iops,
    ] {
        for d in list.iter().flatten() {
            block_device(&d.path)?;
        }
    }
    if hc.cgroup_parent.split('/').any(|c| c == "..") {
        return Err(ApiError::invalid(format!(
            "invalid cgroup parent {:?}",
            hc.cgroup_parent
        )));
    }
    Ok(())
}

/// A /dev/shm bound in from `source` (the host's, or, `own`, one berthd made for
/// a shareable container, which a remapped container's root owns).
fn shm_bind(source: std::path::PathBuf, own: bool) -> MountSpec {
    MountSpec {
        destination: "/dev/shm".into(),
        kind: MountKind::Bind {
            source,
            file: false,
            propagation: None,
            nonrecursive: false,
            idmap: own,
            nofollow: false,
        },
        readonly: false,
    }
}

impl Containers {
    /// The mapping of a container's own user namespace: the daemon's
    /// `userns-remap`, unless the container says `--userns=host`.
    pub(super) fn remapped(&self, hc: &HostConfig) -> Option<&berth_runtime::spec::IdMap> {
        self.defaults
            .userns
            .as_ref()
            .filter(|_| hc.userns_mode != "host")
    }

    /// What a remapped container cannot have, in dockerd's words.
    pub(super) fn check_userns(&self, hc: &HostConfig) -> ApiResult<()> {
        if self.remapped(hc).is_none() {
            return Ok(());
        }
        if hc.privileged {
            return Err(ApiError::invalid(
                "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
            ));
        }
        if hc.network_mode == "host" {
            return Err(ApiError::invalid(
                "cannot share the host's network namespace when user namespaces are enabled",
            ));
        }
        if hc.pid_mode == "host" {
            return Err(ApiError::invalid(
                "cannot share the host PID namespace when user namespaces are enabled",
            ));
        }
        Ok(())
    }

    /// A remapped container sharing another's namespaces joins that container's
    /// user namespace too, as dockerd has it (the namespaces it shares belong to
    /// it): the container whose pidfd the shim gets as USERNS_FD. All it shares
    /// must then be one container's, itself remapped.
    fn shared_userns(&self, r: &Record) -> ApiResult<Option<OwnedFd>> {
        let hc = &r.host_config;
        if self.remapped(hc).is_none() {
            return Ok(None);
        }
        let keys: Vec<&str> = [&hc.network_mode, &hc.ipc_mode, &hc.pid_mode]
            .iter()
            .filter_map(|m| m.strip_prefix("container:"))
            .collect();
        let Some(first) = keys.first() else {
            return Ok(None);
        };
        let owner = self.get(first)?;
        for k in &keys[1..] {
            if self.get(k)?.id != owner.id {
                return Err(ApiError::invalid(format!(
                    "a remapped container can share the namespaces of one container only: {first} and {k} each have their own user namespace"
                )));
            }
        }
        let pid = owner.rec().state.pid as i32;
        if owner.is_running() && matches!(berth_runtime::spec::IdMap::of_process(pid), Ok(None)) {
            return Err(ApiError::invalid(format!(
                "cannot share the namespaces of container {first}, which runs in the host's user namespace (--userns=host), from a remapped container"
            )));
        }
        self.namespace_of("user", first, r).map(Some)
    }

    /// What every process of the container runs with: its capabilities, its
    /// seccomp filter (compiled for those capabilities; none for a privileged
    /// container under the default profile, as Docker has it) and no_new_privs.
    pub(super) fn process_security(
        &self,
        hc: &HostConfig,
    ) -> ApiResult<(Vec<u8>, Option<berth_runtime::spec::SeccompFilter>, bool)> {
        let capabilities = capabilities(hc)?;
        let (mut seccomp, no_new_privileges) = self.filters.for_process(hc, &capabilities)?;
        if hc.privileged
            && matches!(
                super::security::parse(hc)?.seccomp,
                super::security::Seccomp::Default | super::security::Seccomp::Builtin
            )
        {
            seccomp = None;
        }
        Ok((capabilities, seccomp, no_new_privileges))
    }

    /// Another container whose namespace this one joins: it must be running; the
    /// fd is its pidfd, which names that very process (no pid reuse can
    /// redirect it) and which setns(2) accepts for any of its namespaces.
    fn namespace_of(&self, what: &str, key: &str, me: &Record) -> ApiResult<OwnedFd> {
        let other = self.get(key)?;
        if other.id == me.id {
            return Err(ApiError::invalid(format!(
                "cannot join own {what} namespace"
            )));
        }
        let not_running = || {
            ApiError::conflict(format!(
                "cannot join {what} of a non running container: {}",
                other.id
            ))
        };
        if !other.is_running() {
            return Err(not_running());
        }
        let guard = other.pidfd.lock().unwrap_or_else(|p| p.into_inner());
        let fd = guard.as_ref().ok_or_else(not_running)?;
        fd.try_clone().map_err(|_| not_running())
    }

    /// Fills in what the options say: namespaces (with the fds of another
    /// container's to pass to the shim), sysctls, /dev/shm, devices, privileges,
    /// the OOM knobs.
    pub(super) fn apply_options(
        &self,
        r: &Record,
        spec: &mut Spec,
    ) -> ApiResult<Vec<(OwnedFd, RawFd)>> {
        let hc = &r.host_config;
        self.check_userns(hc)?;
        let mut fds = Vec::new();
        if let Some(fd) = self.shared_userns(r)? {
            fds.push((fd, USERNS_FD));
            spec.namespaces.user_join = true;
        }
        match mode("PID", &hc.pid_mode, &["host", "container"])? {
            Mode::Host => spec.namespaces.pid = NsSource::Host,
            Mode::Container(key) => {
                fds.push((self.namespace_of("PID", key, r)?, PIDNS_FD));
                spec.namespaces.pid = NsSource::Join;
            }
            _ => {}
        }
        match mode(
            "IPC",
            &hc.ipc_mode,
            &["host", "private", "shareable", "none", "container"],
        )? {
            Mode::Host => {
                spec.namespaces.ipc = NsSource::Host;
                // The host's POSIX shared memory too, as Docker binds it.
                spec.namespaces.no_shm = true;
                spec.mounts.push(shm_bind("/dev/shm".into(), false));
            }
            Mode::Container(key) => {
                fds.push((self.namespace_of("IPC", key, r)?, IPCNS_FD));
                spec.namespaces.ipc = NsSource::Join;
                // The donor's /dev/shm with its namespace, as Docker binds it.
                let shm = self.donor_shm(key)?;
                spec.namespaces.no_shm = true;
                spec.mounts.push(shm_bind(shm, true));
            }
            Mode::None => spec.namespaces.no_shm = true,
            Mode::Private if hc.ipc_mode == "shareable" => {
                let shm = self.mount_shm(r)?;
                spec.namespaces.no_shm = true;
                spec.mounts.push(shm_bind(shm, true));
            }
            Mode::Private => {}
        }
        spec.namespaces.uts_host = hc.uts_mode == "host";
        // Docker's default is a private cgroup namespace on cgroup v2 and the
        // host's on v1; berth gives a private one unless asked for the host's.
        spec.namespaces.cgroup_host = hc.cgroupns_mode == "host";
        if !spec.namespaces.cgroup_host {
            spec.cgroup_mounts = self
                .cgroup_mounts
                .get_or_init(|| cgroup_mounts(&self.hierarchy))
                .clone();
        }
        spec.sysctls = hc
            .sysctls
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Docker's defaults for a network namespace of the container's own: any
        // port may be bound without CAP_NET_BIND_SERVICE and, outside a user
        // namespace, ICMP echo sockets need no CAP_NET_RAW. The container's own
        // values win.
        if hc.network_mode != "host" && !hc.network_mode.starts_with("container:") {
            // The ones this kernel has, looked up once.
            static DEFAULTS: std::sync::OnceLock<Vec<(&str, &str)>> = std::sync::OnceLock::new();
            let defaults = DEFAULTS.get_or_init(|| {
                [
                    ("net.ipv4.ip_unprivileged_port_start", "0"),
                    ("net.ipv4.ping_group_range", "0 2147483647"),
                ]
                .into_iter()
                .filter(|(k, _)| {
                    std::path::Path::new("/proc/sys")
                        .join(k.replace('.', "/"))
                        .exists()
                })
                .collect()
            });
            // In a user namespace (remapped, or a rootless berthd's) the range
            // would name unmapped groups, which the kernel refuses.
            let remapped = self.remapped(hc).is_some() || self.defaults.rootless;
            for (k, v) in defaults {
                // No ping sockets for a remapped container (dockerd's rule).
                let skip = remapped && k.ends_with("ping_group_range");
                let own = spec.sysctls.iter().any(|(have, _)| have == k);
                if !skip && !own {
                    spec.sysctls.insert(0, (k.to_string(), v.to_string()));
                }
            }
        }
        if hc.shm_size > 0 {
            spec.shm_size = Some(hc.shm_size as u64);
        }
        spec.process.oom_score_adj = (hc.oom_score_adj != 0).then_some(hc.oom_score_adj as i32);
        let v1_memory = self.hierarchy.mode != berth_runtime::cgroups::Mode::V2;
        spec.cgroup.oom_kill_disable = v1_memory && hc.oom_kill_disable == Some(true);
        spec.cgroup.memory_swappiness = hc
            .memory_swappiness
            .filter(|s| *s >= 0 && v1_memory)
            .map(|s| s as u64);
        if self.hierarchy.has_blkio_weight_device() {
            for d in hc.blkio_weight_device.iter().flatten() {
                let (maj, min) = block_device(&d.path)?;
                spec.cgroup.blkio_weight_device.push((maj, min, d.weight));
            }
        }
        if self.hierarchy.has_blkio_throttle() {
            let t = &mut spec.cgroup.blkio_throttle;
            for (list, out) in [
                (&hc.blkio_device_read_bps, &mut t.read_bps),
                (&hc.blkio_device_write_bps, &mut t.write_bps),
                (&hc.blkio_device_read_iops, &mut t.read_iops),
                (&hc.blkio_device_write_iops, &mut t.write_iops),
            ] {
                for d in list.iter().flatten() {
                    let (maj, min) = block_device(&d.path)?;
                    out.push((maj, min, d.rate));
                }
            }
        }
        for d in hc.devices.iter().flatten() {
            for (dev, perms) in resolve_device(d)? {
                spec.cgroup
                    .device_rules
                    .push(format!("{} {}:{} {perms}", dev.kind, dev.major, dev.minor));
                spec.devices.push(dev);
            }
        }
        spec.cgroup
            .device_rules
            .extend(hc.device_cgroup_rules.iter().flatten().cloned());
        let security = super::security::parse(hc)?;
        if security.system_paths_unconfined {
            spec.masked_paths.clear();
            spec.readonly_paths.clear();
        }
        spec.writable_cgroups = security.writable_cgroups;
        if hc.privileged {
            // Every capability (already in the process), every host device, no
            // masked or read-only paths, /sys writable, no seccomp filter and no
            // no_new_privs unless asked for, as Docker does.
            spec.privileged = true;
            spec.masked_paths.clear();
            spec.readonly_paths.clear();
            spec.cgroup.device_rules.push("a".into());
            let have: Vec<String> = spec.devices.iter().map(|d| d.path.clone()).collect();
            for (host, dev) in host_devices(std::path::Path::new("/dev")) {
                let path = host.display().to_string();
                if !have.contains(&path) {
                    spec.devices.push(Device { path, ..dev });
                }
            }
        }
        Ok(fds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(add: &[&str], drop: &[&str]) -> HostConfig {
        HostConfig {
            cap_add: Some(add.iter().map(|s| s.to_string()).collect()),
            cap_drop: Some(drop.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn capabilities_in_dockers_order() {
        let net_admin = caps::from_name("CAP_NET_ADMIN").unwrap();
        let chown = caps::from_name("CAP_CHOWN").unwrap();
        let default = caps::docker_default();
        assert_eq!(capabilities(&hc(&[], &[])).unwrap(), {
            let mut d = default.clone();
            d.sort_unstable();
            d
        });
        let c = capabilities(&hc(&["net_admin"], &["CAP_CHOWN"])).unwrap();
        assert!(c.contains(&net_admin) && !c.contains(&chown));
        // Drop ALL keeps only the added ones.
        assert_eq!(
            capabilities(&hc(&["NET_ADMIN"], &["ALL"])).unwrap(),
            [net_admin]
        );
        // Add ALL gives all but the dropped ones.
        let c = capabilities(&hc(&["ALL"], &["chown"])).unwrap();
        assert_eq!(c.len(), caps::all(cap_last_cap()).len() - 1);
        assert!(!c.contains(&chown));
        let e = capabilities(&hc(&["NOPE"], &[])).unwrap_err();
        assert_eq!(e.message, "unknown capability: \"CAP_NOPE\"");
        let privileged = HostConfig {
            privileged: true,
            ..hc(&[], &["ALL"])
        };
        assert_eq!(
            capabilities(&privileged).unwrap(),
            caps::all(cap_last_cap())
        );
    }

    #[test]
    fn modes_and_knobs_are_checked_with_dockers_words() {
        let ok = |f: &dyn Fn(&mut HostConfig)| {
            let mut h = HostConfig::default();
            f(&mut h);
            check(&h)
        };
        assert!(ok(&|h| h.pid_mode = "host".into()).is_ok());
        assert!(ok(&|h| h.ipc_mode = "shareable".into()).is_ok());
        assert!(ok(&|h| h.ipc_mode = "container:web".into()).is_ok());
        assert_eq!(
            ok(&|h| h.pid_mode = "bogus".into()).unwrap_err().message,
            "invalid PID mode: bogus"
        );
        assert_eq!(
            ok(&|h| h.runtime = "kata".into()).unwrap_err().message,
            "unknown or invalid runtime name: kata"
        );
        let sys = |k: &str, net: &str| {
            ok(&|h| {
                h.network_mode = net.into();
                h.sysctls = Some([(k.to_string(), "1".to_string())].into());
            })
        };
        assert!(sys("net.ipv4.ip_forward", "bridge").is_ok());
        assert!(sys("kernel.shmmax", "bridge").is_ok());
        assert!(sys("fs.mqueue.msg_max", "bridge").is_ok());
        assert!(sys("net.ipv4.ip_forward", "host")
            .unwrap_err()
            .message
            .contains("not allowed in host network namespace"));
        assert!(sys("kernel.panic", "bridge").is_err());
        assert!(sys("vm.swappiness", "bridge").is_err());
        assert!(ok(&|h| h.oom_score_adj = 1001).is_err());
        assert!(ok(&|h| h.shm_size = -1).is_err());
        for good in ["c 1:3 rwm", "a *:* rwm", "b 8:* r"] {
            assert!(check_cgroup_rule(good).is_ok(), "{good}");
        }
        for bad in ["c 1:3", "x 1:3 r", "c a:3 r", "c 1:3 rwx", "c 1 r"] {
            assert!(check_cgroup_rule(bad).is_err(), "{bad}");
        }
    }
}
