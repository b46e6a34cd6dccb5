//! berthd's configuration: dockerd's flags and daemon.json keys, with dockerd's rules:
//! an unknown key, a bad value, or a setting given both as a flag and in the file
//! stops the start with a message naming it.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use std::path::{Path, PathBuf};

mod checks;
#[cfg(test)]
mod tests;

pub use checks::tcp_addr;
use checks::{container_defaults, group_id, net_config, validate_host, DefaultBridge};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

/// Where a rootless berthd keeps things unless told otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct RootlessDefaults {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub host: String,
    pub config_file: PathBuf,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "berthd",
    version,
    about = "berth's daemon: the Docker Engine API on a unix socket"
)]
pub struct Flags {
    /// A rootless berthd's defaults (data root, exec root, socket, config
    /// file), set by main, never on the command line.
    #[arg(skip)]
    pub rootless: Option<RootlessDefaults>,
    /// Daemon socket(s) to listen on: unix:///path, fd:// (socket activation), or
    /// tcp://ADDR:PORT (with --tlsverify unless on a loopback address).
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Group owning the unix sockets (name or number). [default: docker, when
    /// that group exists]
    #[arg(short = 'G', long)]
    pub group: Option<String>,
    /// Use TLS on tcp:// sockets (implied by --tlsverify).
    #[arg(long)]
    pub tls: bool,
    /// Use TLS and require client certificates signed by --tlscacert.
    #[arg(long)]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA. [default: ~/.docker/ca.pem]
    #[arg(long)]
    pub tlscacert: Option<PathBuf>,
    /// Path to the TLS certificate file. [default: ~/.docker/cert.pem]
    #[arg(long)]
    pub tlscert: Option<PathBuf>,
    /// Path to the TLS key file. [default: ~/.docker/key.pem]
    #[arg(long)]
    pub tlskey: Option<PathBuf>,
    /// Root of persistent state (images, containers, logs). [default: /var/lib/berth]
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Root of runtime state (shim sockets). [default: /run/berth]
    #[arg(long)]
    pub exec_root: Option<PathBuf>,
    /// Path of the daemon's pid file. [default: <exec-root>/berthd.pid]
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,
    /// Daemon configuration file (Docker's daemon.json keys).
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Validate the flags and the configuration file, then exit.
    #[arg(long)]
    pub validate: bool,
    /// Default size of containers' /dev/shm (e.g. 64M).
    #[arg(long)]
    pub default_shm_size: Option<String>,
    /// Default ulimits for containers (name=soft[:hard]).
    #[arg(long = "default-ulimit")]
    pub default_ulimits: Vec<String>,
    /// Default log driver for containers (json-file, local, none).
    #[arg(long)]
    pub log_driver: Option<String>,
    /// Default log driver options for containers (key=value).
    #[arg(long = "log-opt")]
    pub log_opts: Vec<String>,
    /// Default cgroup namespace mode of containers (host or private).
    #[arg(long)]
    pub default_cgroupns_mode: Option<String>,
    /// Labels of the daemon (key=value), shown by `docker info`.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Enable experimental features (shown by `docker info`).
    #[arg(long)]
    pub experimental: bool,
    /// The real-time budget, in microseconds per period, of the parent cgroup of
    /// all containers (cgroup v1); containers' --cpu-rt-runtime comes out of it.
    /// [default: 0]
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    /// The real-time period of the parent cgroup, in microseconds. [default: 1000000]
    #[arg(long)]
    pub cpu_rt_period: Option<i64>,
    /// Run containers under docker-init unless they say --init=false.
    #[arg(long)]
    pub init: bool,
    /// Containers run with no_new_privs unless they say no-new-privileges=false.
    #[arg(long)]
    pub no_new_privileges: bool,
    /// Containers' default seccomp profile: a file in Docker's format, "builtin"
    /// or "unconfined". [default: builtin]
    #[arg(long)]
    pub seccomp_profile: Option<String>,
    /// The default runtime: berth's own, which answers to "runc". [default: runc]
    #[arg(long)]
    pub default_runtime: Option<String>,
    /// Runtime options: native.cgroupdriver=cgroupfs (berth's driver).
    #[arg(long = "exec-opt")]
    pub exec_opts: Vec<String>,
    /// IPv4 addresses of containers on the default bridge come from this range
    /// (inside its subnet).
    #[arg(long)]
    pub fixed_cidr: Option<String>,
    /// IPv6 on the default bridge, from --fixed-cidr-v6.
    #[arg(long)]
    pub ipv6: bool,
    /// The default bridge's IPv6 subnet (with --ipv6).
    #[arg(long)]
    pub fixed_cidr_v6: Option<String>,
    /// Layers downloaded at once, across all pulls. [default: 3]
    #[arg(long)]
    pub max_concurrent_downloads: Option<i64>,
    /// Layers pushed at once, across all pushes. [default: 5]
    #[arg(long)]
    pub max_concurrent_uploads: Option<i64>,
    /// Seconds the daemon waits at shutdown for containers to stop, at least (a
    /// container's own stop timeout and 5 more seconds may extend it; -1: no
    /// limit). [default: 15]
    #[arg(long, allow_hyphen_values = true)]
    pub shutdown_timeout: Option<i64>,
    /// Containers' root becomes this user's subordinate IDs (/etc/subuid,
    /// /etc/subgid): `user[:group]`, or `default` for the dockremap user, made
    /// when missing.
    #[arg(long)]
    pub userns_remap: Option<String>,
    /// Serve the engine's metrics (Prometheus' text format) on GET /metrics at
    /// this address (host:port), in plain HTTP.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// The init binary bound into `--init` containers at /sbin/docker-init
    /// (tini's interface: `INIT -- COMMAND...`). [default: berth-shim's own]
    #[arg(long)]
    pub init_path: Option<PathBuf>,
    /// Storage driver options (key=value): overlay2.size, checked as dockerd does.
    #[arg(long = "storage-opt")]
    pub storage_opts: Vec<String>,

    /// Debug logging.
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Log level: debug, info, warn, error, fatal.
    #[arg(short = 'l', long)]
    pub log_level: Option<String>,
    /// Leave containers running when the daemon stops.
    #[arg(long)]
    pub live_restore: bool,
    /// Parent cgroup of all containers. [default: berth]
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Storage driver (only overlay2 for now).
    #[arg(short = 's', long)]
    pub storage_driver: Option<String>,
    /// The default bridge's interface ("none": no default bridge). [default: berth0]
    #[arg(short = 'b', long)]
    pub bridge: Option<String>,
    /// The default bridge's address and subnet, e.g. 172.30.0.1/16.
    #[arg(long)]
    pub bip: Option<String>,
    /// Where networks' subnets come from: base=<cidr>,size=<prefix length>.
    #[arg(long = "default-address-pool")]
    pub default_address_pools: Vec<String>,
    /// Let containers on the default bridge talk to each other (--icc=false: no).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub icc: Option<bool>,
    /// The host address of ports published on the default bridge. [default: 0.0.0.0]
    #[arg(long)]
    pub ip: Option<String>,
    /// MTU of the default bridge and its containers' interfaces. [default: 1500]
    #[arg(long)]
    pub mtu: Option<i64>,
    /// Let berth program its nftables table (NAT, isolation, published ports);
    /// --iptables=false: no firewall rules at all (ports served by the shims).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub iptables: Option<bool>,
    /// Turn on IPv4 forwarding. [default: true]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ip_forward: Option<bool>,
    /// Masquerade the default bridge's traffic out. [default: true]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ip_masq: Option<bool>,
    /// Forward ports published on IPv6 to containers that have only IPv4 (the
    /// shim proxies them); --userland-proxy=false: IPv4 only for those.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub userland_proxy: Option<bool>,
    /// DNS servers for containers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domains for containers.
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// DNS options for containers.
    #[arg(long = "dns-opt")]
    pub dns_opts: Vec<String>,
    /// Registries spoken to over plain HTTP (host[:port] or CIDR).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Mirrors tried first for Docker Hub images.
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Authorization plugins asked about every request, in order.
    #[arg(long = "authorization-plugin")]
    pub authorization_plugins: Vec<String>,
    /// Where legacy plugins' sockets and spec files are looked for (berth's own
    /// flag). [default: /run/docker/plugins, /etc/docker/plugins, /usr/lib/docker/plugins]
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Directories of per-registry TLS files (<dir>/<host>/ca.crt, client.cert,
    /// client.key). [default: /etc/docker/certs.d and /etc/berth/certs.d]
    #[arg(long = "registry-certs-dir")]
    pub registry_certs_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolEntry {
    base: String,
    size: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    hosts: Option<Vec<String>>,
    group: Option<String>,
    tls: Option<bool>,
    tlsverify: Option<bool>,
    tlscacert: Option<PathBuf>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    debug: Option<bool>,
    log_level: Option<String>,
    live_restore: Option<bool>,
    cgroup_parent: Option<String>,
    storage_driver: Option<String>,
    bridge: Option<String>,
    bip: Option<String>,
    default_address_pools: Option<Vec<PoolEntry>>,
    icc: Option<bool>,
    ip: Option<String>,
    mtu: Option<i64>,
    userland_proxy: Option<bool>,
    iptables: Option<bool>,
    ip_forward: Option<bool>,
    ip_masq: Option<bool>,
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_opts: Option<Vec<String>>,
    insecure_registries: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    default_shm_size: Option<String>,
    default_ulimits: Option<std::collections::BTreeMap<String, FileUlimit>>,
    log_driver: Option<String>,
    log_opts: Option<std::collections::BTreeMap<String, String>>,
    default_cgroupns_mode: Option<String>,
    labels: Option<Vec<String>>,
    experimental: Option<bool>,
    features: Option<std::collections::BTreeMap<String, bool>>,
    max_concurrent_downloads: Option<i64>,
    max_concurrent_uploads: Option<i64>,
    shutdown_timeout: Option<i64>,
    authorization_plugins: Option<Vec<String>>,
    init: Option<bool>,
    cpu_rt_runtime: Option<i64>,
    cpu_rt_period: Option<i64>,
    no_new_privileges: Option<bool>,
    seccomp_profile: Option<String>,
    default_runtime: Option<String>,
    exec_opts: Option<Vec<String>>,
    fixed_cidr: Option<String>,
    ipv6: Option<bool>,
    fixed_cidr_v6: Option<String>,
    userns_remap: Option<String>,
    metrics_addr: Option<String>,
    init_path: Option<PathBuf>,
    builder: Option<FileBuilder>,
    storage_opts: Option<Vec<String>>,
    runtimes: Option<std::collections::BTreeMap<String, FileRuntime>>,
}

/// A daemon.json `runtimes` entry (dockerd's fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRuntime {
    #[serde(default)]
    path: Option<String>,
    #[serde(default, rename = "runtimeArgs")]
    runtime_args: Option<Vec<String>>,
    #[serde(default, rename = "runtimeType")]
    runtime_type: Option<String>,
    #[serde(default)]
    options: Option<serde_json::Map<String, serde_json::Value>>,
}

/// dockerd's checks of `runtimes`; the names and what each runs. berth keeps them
/// only to answer a container that asks for one (see `Defaults::runtimes`).
fn runtimes(
    all: &std::collections::BTreeMap<String, FileRuntime>,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, rt) in all {
        if ["runc", "io.containerd.runc.v2"].contains(&name.as_str()) {
            bail!("runtime name '{name}' is reserved");
        }
        let path = rt.path.clone().filter(|p| !p.is_empty());
        let kind = rt.runtime_type.clone().filter(|t| !t.is_empty());
        let what = match (path, kind) {
            (None, None) => {
                bail!("runtime {name}: either a runtimeType or a path must be configured")
            }
            (Some(_), Some(_)) => bail!(
                "runtime {name}: cannot configure both path and runtimeType for the same runtime"
            ),
            (Some(_), None) if rt.options.as_ref().is_some_and(|o| !o.is_empty()) => {
                bail!("runtime {name}: options cannot be used with a path runtime")
            }
            (Some(p), None) => {
                let args = rt.runtime_args.clone().unwrap_or_default();
                std::iter::once(p).chain(args).collect::<Vec<_>>().join(" ")
            }
            (None, Some(t)) => t,
        };
        out.insert(name.clone(), what);
    }
    Ok(out)
}

/// daemon.json's `builder` (Go's JSON: keys match in any case).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBuilder {
    #[serde(default, alias = "GC", alias = "Gc")]
    gc: Option<FileBuilderGc>,
    #[serde(default, alias = "Entitlements")]
    entitlements: Option<std::collections::BTreeMap<String, bool>>,
    #[serde(default, alias = "History")]
    history: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBuilderGc {
    #[serde(default, alias = "Enabled")]
    enabled: Option<bool>,
    #[serde(default, rename = "defaultKeepStorage", alias = "DefaultKeepStorage")]
    default_keep_storage: Option<String>,
    #[serde(default, alias = "Policy")]
    policy: Option<Vec<FileGcRule>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGcRule {
    #[serde(default, alias = "All")]
    all: bool,
    #[serde(default, alias = "Filter")]
    filter: Option<serde_json::Value>,
    #[serde(default, rename = "keepStorage", alias = "KeepStorage")]
    keep_storage: Option<String>,
}

/// dockerd's builder GC settings as the rules berth runs: the policy, or one rule
/// keeping `defaultKeepStorage`; none when GC is off.
fn builder_gc(b: &FileBuilder) -> Result<Vec<crate::daemon::build::GcRule>> {
    if b.history.is_some() {
        bail!("builder.history: berth keeps no build history records to limit");
    }
    for (k, v) in b.entitlements.iter().flatten() {
        match k.as_str() {
            // dockerd's default, and berth's behaviour: RUN --network=host allowed.
            "network-host" if *v => {}
            "network-host" => bail!(
                "builder.entitlements.network-host=false: berth does not forbid RUN --network=host in builds yet"
            ),
            "security-insecure" if !v => {}
            "security-insecure" => bail!(
                "builder.entitlements.security-insecure: berth does not run privileged build steps"
            ),
            other => bail!("builder.entitlements: unknown entitlement {other:?}"),
        }
    }
    let Some(gc) = &b.gc else {
        return Ok(Vec::new());
    };
    if gc.enabled == Some(false) {
        return Ok(Vec::new());
    }
    let size = |what: &str, s: &Option<String>| -> Result<i64> {
        match s.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(0),
            Some(s) => berth_api::parse_size(s)
                .ok_or_else(|| anyhow::anyhow!("builder.gc.{what}: invalid size {s:?}")),
        }
    };
    let default_keep = size("defaultKeepStorage", &gc.default_keep_storage)?;
    let Some(policy) = gc.policy.as_ref().filter(|p| !p.is_empty()) else {
        return Ok(vec![crate::daemon::build::GcRule {
            all: false,
            keep_storage: default_keep,
            until_secs: None,
        }]);
    };
    policy
        .iter()
        .map(|r| {
            let mut until = None;
            // A list of "key=value" or a map of key to values, as dockerd takes it.
            let pairs: Vec<(String, String)> = match &r.filter {
                None => Vec::new(),
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str())
                    .filter_map(|s| {
                        s.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect(),
                Some(serde_json::Value::Object(o)) => o
                    .iter()
                    .flat_map(|(k, v)| match v {
                        serde_json::Value::String(s) => vec![(k.clone(), s.clone())],
                        serde_json::Value::Object(m) => {
                            m.keys().map(|s| (k.clone(), s.clone())).collect()
                        }
                        _ => Vec::new(),
                    })
                    .collect(),
                Some(other) => bail!("builder.gc.policy: invalid filter {other}"),
            };
            for (k, v) in pairs {
                match k.as_str() {
                    "unused-for" | "until" => {
                        until = Some(
                            berth_build::exec::duration_ns(&v)
                                .map(|n| n / 1_000_000_000)
                                .ok_or_else(|| {
                                    anyhow::anyhow!("builder.gc.policy: invalid {k} {v:?}")
                                })?,
                        )
                    }
                    other => {
                        bail!("builder.gc.policy: berth filters by unused-for only, not {other:?}")
                    }
                }
            }
            let keep = match &r.keep_storage {
                Some(_) => size("policy.keepStorage", &r.keep_storage)?,
                None => default_keep,
            };
            Ok(crate::daemon::build::GcRule {
                all: r.all,
                keep_storage: keep,
                until_secs: until,
            })
        })
        .collect()
}

/// daemon.json's `default-ulimits` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUlimit {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Soft")]
    soft: i64,
    #[serde(rename = "Hard")]
    hard: i64,
}

/// TLS for tcp:// sockets.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With `--tlsverify`: clients must present a certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub hosts: Vec<String>,
    /// The group owning the unix sockets (None: root's).
    pub socket_gid: Option<u32>,
    pub tls: Option<Tls>,
    /// What containers get when they do not say.
    pub container_defaults: crate::daemon::container::Defaults,
    /// Reloadable with SIGHUP, shown by `docker info`.
    pub labels: Vec<String>,
    pub experimental: bool,
    /// `shutdown-timeout` (seconds; -1: none), reloadable.
    pub shutdown_timeout: i64,
    /// `cpu-rt-period` and `cpu-rt-runtime` of the parent cgroup.
    pub cpu_rt: (u64, i64),
    /// `userns-remap`, resolved (and dockremap made) when the daemon starts.
    pub userns_remap: Option<String>,
    /// `metrics-addr`: where GET /metrics is served.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `builder.gc`: the rules the builder's garbage collection runs.
    pub builder_gc: Vec<crate::daemon::build::GcRule>,
    /// `storage-opts`, checked against the driver and the data root at start.
    pub storage_opts: Vec<String>,
    /// Where legacy plugins are found.
    pub plugin_dirs: Vec<PathBuf>,
    /// `authorization-plugins`, in order.
    pub authorization_plugins: Vec<String>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub debug: bool,
    pub log_level: String,
    pub live_restore: bool,
    pub cgroup_parent: String,
    pub net: crate::daemon::network::NetConfig,
    pub registries: crate::daemon::image::pull::RegistryConfig,
    /// `--storage-driver`; None: chosen at start (overlay2, or vfs where overlayfs
    /// cannot work).
    pub storage_driver: Option<String>,
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig> {
    let raw: serde_json::Value = serde_json::from_str(text).with_context(|| {
        format!(
            "unable to configure the daemon with file {}: invalid JSON",
            path.display()
        )
    })?;
    serde_json::from_value(raw).map_err(|e| {
        let m = e.to_string();
        // dockerd's words for a key it does not know.
        match m
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
        {
            Some((k, _)) => anyhow::anyhow!(
                "unable to configure the daemon with file {}: the following directives don't match any configuration option: {k}",
                path.display()
            ),
            None => anyhow::anyhow!(
                "unable to configure the daemon with file {}: {m}",
                path.display()
            ),
        }
    })
}

impl Config {
    pub fn load(flags: Flags) -> Result<Config> {
        let (path, explicit) = match (&flags.config_file, &flags.rootless) {
            (Some(p), _) => (p.clone(), true),
            (None, Some(r)) => (r.config_file.clone(), false),
            (None, None) => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => parse_file(&path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                FileConfig::default()
            }
            Err(e) => bail!(
                "unable to configure the daemon with file {}: {e}",
                path.display()
            ),
        };
        Self::merge(flags, file)
    }

    fn merge(flags: Flags, file: FileConfig) -> Result<Config> {
        let mut both = Vec::new();
        macro_rules! pick {
            ($flag:expr, $file:expr, $name:literal) => {
                match ($flag, $file) {
                    (Some(a), Some(b)) => {
                        both.push(format!(
                            "{}: (from flag: {:?}, from file: {:?})",
                            $name, a, b
                        ));
                        None
                    }
                    (a, b) => a.or(b),
                }
            };
        }
        let hosts = pick!(
            (!flags.hosts.is_empty()).then_some(flags.hosts),
            file.hosts,
            "hosts"
        );
        let group = pick!(flags.group.clone(), file.group, "group");
        let tlscacert = pick!(flags.tlscacert, file.tlscacert, "tlscacert");
        let tlscert = pick!(flags.tlscert, file.tlscert, "tlscert");
        let tlskey = pick!(flags.tlskey, file.tlskey, "tlskey");
        let tlsverify =
            pick!(flags.tlsverify.then_some(true), file.tlsverify, "tlsverify").unwrap_or(false);
        let tls_on =
            pick!(flags.tls.then_some(true), file.tls, "tls").unwrap_or(false) || tlsverify;
        let data_root = pick!(flags.data_root, file.data_root, "data-root");
        let exec_root = pick!(flags.exec_root, file.exec_root, "exec-root");
        let pidfile = pick!(flags.pidfile, file.pidfile, "pidfile");
        let log_level = pick!(flags.log_level, file.log_level, "log-level");
        let cgroup_parent = pick!(flags.cgroup_parent, file.cgroup_parent, "cgroup-parent");
        let storage_driver = pick!(flags.storage_driver, file.storage_driver, "storage-driver");
        let nonempty = |v: Vec<String>| (!v.is_empty()).then_some(v);
        let bridge = pick!(flags.bridge, file.bridge, "bridge");
        let bip = pick!(flags.bip, file.bip, "bip");
        let pools = pick!(
            nonempty(flags.default_address_pools),
            file.default_address_pools.map(|v| v
                .into_iter()
                .map(|p| format!("base={},size={}", p.base, p.size))
                .collect()),
            "default-address-pools"
        );
        let icc = pick!(flags.icc, file.icc, "icc");
        let ip = pick!(flags.ip, file.ip, "ip");
        let mtu = pick!(flags.mtu, file.mtu, "mtu");
        let userland_proxy = pick!(flags.userland_proxy, file.userland_proxy, "userland-proxy");
        let iptables = pick!(flags.iptables, file.iptables, "iptables").unwrap_or(true);
        let ip_forward = pick!(flags.ip_forward, file.ip_forward, "ip-forward").unwrap_or(true);
        let ip_masq = pick!(flags.ip_masq, file.ip_masq, "ip-masq").unwrap_or(true);
        let dns = pick!(nonempty(flags.dns), file.dns, "dns");
        let dns_search = pick!(nonempty(flags.dns_search), file.dns_search, "dns-search");
        let dns_opts = pick!(nonempty(flags.dns_opts), file.dns_opts, "dns-opts");
        let insecure = pick!(
            nonempty(flags.insecure_registries),
            file.insecure_registries,
            "insecure-registries"
        );
        let mirrors = pick!(
            nonempty(flags.registry_mirrors),
            file.registry_mirrors,
            "registry-mirrors"
        );
        let shm = pick!(
            flags.default_shm_size,
            file.default_shm_size,
            "default-shm-size"
        );
        let ulimits = pick!(
            nonempty(flags.default_ulimits.clone()),
            file.default_ulimits.map(|m| m
                .into_iter()
                .map(|(k, u)| format!(
                    "{}={}:{}",
                    if u.name.is_empty() { k } else { u.name },
                    u.soft,
                    u.hard
                ))
                .collect()),
            "default-ulimits"
        );
        let log_driver = pick!(flags.log_driver, file.log_driver, "log-driver");
        let log_opts = pick!(
            nonempty(flags.log_opts.clone()),
            file.log_opts
                .map(|m| m.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
            "log-opts"
        );
        let cgroupns = pick!(
            flags.default_cgroupns_mode,
            file.default_cgroupns_mode,
            "default-cgroupns-mode"
        );
        let labels = pick!(nonempty(flags.labels.clone()), file.labels, "labels");
        let experimental = pick!(
            flags.experimental.then_some(true),
            file.experimental,
            "experimental"
        );
        let init = pick!(flags.init.then_some(true), file.init, "init").unwrap_or(false);
        let authz = pick!(
            nonempty(flags.authorization_plugins.clone()),
            file.authorization_plugins,
            "authorization-plugins"
        )
        .unwrap_or_default();
        let rt_runtime =
            pick!(flags.cpu_rt_runtime, file.cpu_rt_runtime, "cpu-rt-runtime").unwrap_or(0);
        let rt_period =
            pick!(flags.cpu_rt_period, file.cpu_rt_period, "cpu-rt-period").unwrap_or(1_000_000);
        if rt_runtime < 0 || rt_period <= 0 || rt_runtime > rt_period {
            bail!("invalid cpu-rt-runtime {rt_runtime} / cpu-rt-period {rt_period}: the runtime must be between 0 and the period");
        }
        let nnp = pick!(
            flags.no_new_privileges.then_some(true),
            file.no_new_privileges,
            "no-new-privileges"
        )
        .unwrap_or(false);
        let seccomp_profile = pick!(
            flags.seccomp_profile.clone(),
            file.seccomp_profile,
            "seccomp-profile"
        );
        let userns_remap = pick!(
            flags.userns_remap.clone(),
            file.userns_remap,
            "userns-remap"
        )
        .filter(|u| !u.is_empty());
        if let Some(u) = &userns_remap {
            crate::daemon::userns::check(u)?;
        }
        let storage_opts = pick!(
            nonempty(flags.storage_opts.clone()),
            file.storage_opts,
            "storage-opts"
        )
        .unwrap_or_default();
        for o in &storage_opts {
            if !o.contains('=') {
                bail!("unable to parse storage-opt key/value: {o}");
            }
        }
        let builder_gc = match &file.builder {
            Some(b) => builder_gc(b)?,
            None => Vec::new(),
        };
        let init_path = pick!(flags.init_path.clone(), file.init_path, "init-path")
            .filter(|p| !p.as_os_str().is_empty());
        if let Some(p) = &init_path {
            if !p.is_absolute() || !p.is_file() {
                bail!("init-path {}: not an absolute path to a file", p.display());
            }
        }
        let metrics_addr = pick!(
            flags.metrics_addr.clone(),
            file.metrics_addr,
            "metrics-addr"
        )
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<std::net::SocketAddr>().map_err(|_| {
                anyhow::anyhow!("invalid metrics-addr {a:?}: use host:port, e.g. 127.0.0.1:9323")
            })
        })
        .transpose()?;
        let runtime = pick!(
            flags.default_runtime.clone(),
            file.default_runtime,
            "default-runtime"
        );
        let exec_opts = pick!(
            nonempty(flags.exec_opts.clone()),
            file.exec_opts,
            "exec-opts"
        );
        let fixed_cidr = pick!(flags.fixed_cidr.clone(), file.fixed_cidr, "fixed-cidr");
        let ipv6 = pick!(flags.ipv6.then_some(true), file.ipv6, "ipv6").unwrap_or(false);
        let fixed_cidr_v6 = pick!(
            flags.fixed_cidr_v6.clone(),
            file.fixed_cidr_v6,
            "fixed-cidr-v6"
        );
        let downloads = pick!(
            flags.max_concurrent_downloads,
            file.max_concurrent_downloads,
            "max-concurrent-downloads"
        )
        .unwrap_or(3);
        let uploads = pick!(
            flags.max_concurrent_uploads,
            file.max_concurrent_uploads,
            "max-concurrent-uploads"
        )
        .unwrap_or(5);
        let shutdown_timeout = pick!(
            flags.shutdown_timeout,
            file.shutdown_timeout,
            "shutdown-timeout"
        )
        .unwrap_or(15);
        // dockerd's checks and words.
        if downloads < 0 {
            bail!("invalid max concurrent downloads: {downloads}");
        }
        if uploads < 0 {
            bail!("invalid max concurrent uploads: {uploads}");
        }
        if shutdown_timeout < -1 {
            bail!("invalid shutdown timeout: {shutdown_timeout} (seconds, or -1 for none)");
        }
        let runtimes = runtimes(&file.runtimes.clone().unwrap_or_default())?;
        if let Some(r) = runtime.as_deref().filter(|r| *r != "runc") {
            bail!(
                "default runtime {r:?} is not available: berth's own runtime is the only one, and it answers to \"runc\""
            );
        }
        for o in exec_opts.iter().flatten() {
            match o.split_once('=') {
                Some(("native.cgroupdriver", "cgroupfs")) => {}
                Some(("native.cgroupdriver", "systemd")) => bail!(
                    "exec-opt native.cgroupdriver=systemd: berth manages cgroups itself (cgroupfs); the systemd driver is not supported"
                ),
                Some(("native.cgroupdriver", d)) => {
                    bail!("native.cgroupdriver option {d} not supported")
                }
                _ => bail!("unknown exec-opt {o:?}: berth knows native.cgroupdriver=cgroupfs"),
            }
        }
        if let Some(f) = file.features.as_ref() {
            if let Some(k) = f.keys().find(|k| k.as_str() != "buildkit") {
                bail!(
                    "unknown feature {k:?} in \"features\": berth knows \"buildkit\" (always on)"
                );
            }
        }
        if !both.is_empty() {
            bail!(
                "the following directives are specified both as a flag and in the configuration file: {}",
                both.join(", ")
            );
        }
        if let Some(d) = storage_driver
            .as_deref()
            .filter(|d| *d != "overlay2" && *d != "vfs")
        {
            bail!("storage driver {d:?} is not supported: berth has overlay2 and vfs");
        }
        let log_level = log_level.unwrap_or_else(|| "info".into());
        if !["debug", "info", "warn", "error", "fatal"].contains(&log_level.as_str()) {
            bail!("invalid log level {log_level:?}: use debug, info, warn, error or fatal");
        }
        let rootless = flags.rootless.clone();
        let exec_root = exec_root.unwrap_or_else(|| match &rootless {
            Some(r) => r.exec_root.clone(),
            None => PathBuf::from("/run/berth"),
        });
        // A shim's socket is <exec-root>/<64-hex id>/sock and must fit sun_path (108).
        if exec_root.as_os_str().len() > 36 {
            bail!(
                "exec-root {} is too long: at most 36 bytes, so that container sockets fit a unix socket path",
                exec_root.display()
            );
        }
        let mut hosts = hosts.unwrap_or_else(|| match &rootless {
            Some(r) => vec![r.host.clone()],
            None => vec!["unix:///run/berth/berth.sock".into()],
        });
        hosts.dedup();
        for h in &hosts {
            validate_host(h, tls_on, tlsverify)?;
        }
        // dockerd's defaults: the files of ~/.docker (or DOCKER_CERT_PATH).
        let tls = tls_on.then(|| {
            let dir = std::env::var_os("DOCKER_CERT_PATH")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
                .unwrap_or_else(|| PathBuf::from("/root/.docker"));
            Tls {
                cert: tlscert.unwrap_or_else(|| dir.join("cert.pem")),
                key: tlskey.unwrap_or_else(|| dir.join("key.pem")),
                client_ca: tlsverify.then(|| tlscacert.unwrap_or_else(|| dir.join("ca.pem"))),
            }
        });
        let net = net_config(
            bridge,
            bip,
            pools.unwrap_or_default(),
            dns.unwrap_or_default(),
            dns_search.unwrap_or_default(),
            dns_opts.unwrap_or_default(),
            DefaultBridge {
                icc,
                ip,
                mtu,
                fixed_cidr,
                ipv6,
                fixed_cidr_v6,
            },
        )?;
        let net = crate::daemon::network::NetConfig {
            userland_proxy: userland_proxy.unwrap_or(true),
            firewall: iptables,
            ip_forward,
            ip_masq,
            ..net
        };
        let mirrors = mirrors.unwrap_or_default();
        for m in &mirrors {
            if !(m.starts_with("http://") || m.starts_with("https://"))
                || url::Url::parse(m).is_err()
            {
                bail!("invalid mirror: {m:?} is not a valid URI: use http(s)://host[:port]");
            }
        }
        let mut container_defaults =
            container_defaults(shm, ulimits, log_driver, log_opts, cgroupns)?;
        container_defaults.init = init;
        container_defaults.init_path = init_path;
        container_defaults.runtimes = runtimes;
        container_defaults.cpu_rt_runtime = rt_runtime;
        container_defaults.security =
            crate::daemon::container::security::DaemonSecurity::from_config(
                seccomp_profile.as_deref(),
                nnp,
            )
            .map_err(anyhow::Error::msg)?;
        let labels = labels.unwrap_or_default();
        for l in &labels {
            if !l.contains('=') || l.starts_with('=') {
                bail!("bad attribute format: {l}");
            }
        }
        // dockerd's rule: the default group may be missing (root's then), a group
        // asked for must exist.
        let socket_gid = match group.as_deref() {
            // A rootless berthd's socket stays the user's (the host's docker
            // group means nothing in its user namespace).
            None if rootless.is_some() => None,
            None => group_id("docker"),
            Some(g) => Some(group_id(g).with_context(|| {
                format!("group {g} not found: the unix sockets' group must exist")
            })?),
        };
        Ok(Config {
            socket_gid,
            container_defaults,
            labels,
            experimental: experimental.unwrap_or(false),
            registries: crate::daemon::image::pull::RegistryConfig {
                insecure: insecure.unwrap_or_default(),
                mirrors,
                certs_dirs: if flags.registry_certs_dirs.is_empty() {
                    vec!["/etc/docker/certs.d".into(), "/etc/berth/certs.d".into()]
                } else {
                    flags.registry_certs_dirs.clone()
                },
                max_downloads: downloads as usize,
                max_uploads: uploads as usize,
            },
            shutdown_timeout,
            cpu_rt: (rt_period as u64, rt_runtime),
            userns_remap,
            metrics_addr,
            builder_gc,
            storage_opts,
            authorization_plugins: authz,
            plugin_dirs: if flags.plugin_dirs.is_empty() {
                crate::daemon::plugins::DEFAULT_DIRS
                    .iter()
                    .map(PathBuf::from)
                    .collect()
            } else {
                flags.plugin_dirs.clone()
            },
            storage_driver,
            net,
            hosts,
            tls,
            data_root: data_root.unwrap_or_else(|| match &rootless {
                Some(r) => r.data_root.clone(),
                None => PathBuf::from("/var/lib/berth"),
            }),
            pidfile: pidfile.unwrap_or_else(|| exec_root.join("berthd.pid")),
            exec_root,
            debug: flags.debug || file.debug.unwrap_or(false),
            log_level,
            live_restore: flags.live_restore || file.live_restore.unwrap_or(false),
            cgroup_parent: cgroup_parent.unwrap_or_else(|| "berth".into()),
        })
    }
}
