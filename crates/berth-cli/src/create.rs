//! `create` and `run` options, turned into the Engine API's create request as the
//! docker CLI does.

use anyhow::{bail, Context, Result};
use berth_api::{ContainerCreateRequest, HostConfig};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, Args, Clone)]
pub struct CreateOpts {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    #[command(flatten)]
    pub net: crate::network::NetOpts,
    #[command(flatten)]
    pub storage: crate::volume::StorageOpts,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Restart policy to apply when a container exits (no, on-failure[:max-retries], always, unless-stopped)
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Ulimit options (name=soft[:hard], e.g. nofile=1024:2048)
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Security options (seccomp=unconfined|PROFILE.json, no-new-privileges)
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    #[command(flatten)]
    pub privileges: PrivilegeOpts,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options (max-size, max-file)
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_parser = parse_stream)]
    pub attach: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Pull image before creating ("missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

/// One `--security-opt` as the daemon takes it: a seccomp profile is sent by its
/// content, read here from the file named (as the docker CLI does).
/// Privileges, namespaces, devices and kernel knobs.
#[derive(Debug, Args, Clone, Default)]
pub struct PrivilegeOpts {
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// Container isolation technology
    #[arg(long)]
    pub isolation: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Sysctl options
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj")]
    pub oom_score_adj: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long = "memory-swappiness")]
    pub memory_swappiness: Option<i64>,
    /// Kernel memory limit (deprecated)
    #[arg(long = "kernel-memory")]
    pub kernel_memory: Option<String>,
    /// Block IO weight (relative device weight), DEVICE:WEIGHT
    #[arg(long = "blkio-weight-device")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device, DEVICE:RATE
    #[arg(long = "device-read-bps")]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device, DEVICE:RATE
    #[arg(long = "device-write-bps")]
    pub device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device, DEVICE:RATE
    #[arg(long = "device-read-iops")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device, DEVICE:RATE
    #[arg(long = "device-write-iops")]
    pub device_write_iops: Vec<String>,
}

/// `DEVICE:RATE` (`--device-read-bps /dev/sda:1mb`); sizes when `bytes`.
fn throttle(spec: &str, bytes: bool) -> Result<berth_api::ThrottleDevice> {
    let (path, rate) = spec
        .rsplit_once(':')
        .with_context(|| format!("bad format: {spec}"))?;
    let rate = if bytes {
        u64::try_from(parse_bytes(rate)?).context("negative rate")?
    } else {
        rate.parse()
            .with_context(|| format!("invalid rate for device: {spec}. The correct format is <device-path>:<number>. Number must be a positive integer"))?
    };
    Ok(berth_api::ThrottleDevice {
        path: path.to_string(),
        rate,
    })
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`, as the docker CLI splits it.
fn device_mapping(spec: &str) -> Result<berth_api::DeviceMapping> {
    let parts: Vec<&str> = spec.split(':').collect();
    let perms_like =
        |s: &str| !s.is_empty() && s.len() <= 3 && s.chars().all(|c| "rwm".contains(c));
    let (host, inside, perms) = match parts[..] {
        [h] => (h, h, "rwm"),
        [h, p] if perms_like(p) => (h, h, p),
        [h, c] => (h, c, "rwm"),
        [h, c, p] => (h, c, p),
        _ => bail!("invalid device specification: {spec}"),
    };
    if !perms_like(perms) {
        bail!("invalid device specification: {spec}");
    }
    Ok(berth_api::DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: inside.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}

impl PrivilegeOpts {
    pub fn apply(&self, hc: &mut HostConfig) -> Result<()> {
        let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        hc.cap_add = some(&self.cap_add);
        hc.cap_drop = some(&self.cap_drop);
        hc.privileged = self.privileged;
        hc.group_add = some(&self.group_add);
        hc.pid_mode = self.pid.clone().unwrap_or_default();
        hc.ipc_mode = self.ipc.clone().unwrap_or_default();
        hc.uts_mode = self.uts.clone().unwrap_or_default();
        hc.cgroupns_mode = self.cgroupns.clone().unwrap_or_default();
        hc.userns_mode = self.userns.clone().unwrap_or_default();
        hc.runtime = self.runtime.clone().unwrap_or_default();
        hc.isolation = self.isolation.clone().unwrap_or_default();
        hc.cgroup_parent = self.cgroup_parent.clone().unwrap_or_default();
        if !self.sysctl.is_empty() {
            let mut map = BTreeMap::new();
            for kv in &self.sysctl {
                let (k, v) = kv.split_once('=').with_context(|| {
                    format!("invalid argument \"{kv}\" for \"--sysctl\" flag: must be KEY=VALUE")
                })?;
                map.insert(k.to_string(), v.to_string());
            }
            hc.sysctls = Some(map);
        }
        if let Some(s) = &self.shm_size {
            hc.shm_size = parse_bytes(s)?;
        }
        hc.oom_score_adj = self.oom_score_adj.unwrap_or(0);
        hc.oom_kill_disable = self.oom_kill_disable.then_some(true);
        if !self.device.is_empty() {
            hc.devices = Some(
                self.device
                    .iter()
                    .map(|d| device_mapping(d))
                    .collect::<Result<_>>()?,
            );
        }
        hc.device_cgroup_rules = some(&self.device_cgroup_rule);
        hc.memory_swappiness = self.memory_swappiness;
        if let Some(k) = &self.kernel_memory {
            hc.kernel_memory = parse_bytes(k)?;
        }
        if !self.blkio_weight_device.is_empty() {
            let mut list = Vec::new();
            for spec in &self.blkio_weight_device {
                let (path, w) = spec
                    .rsplit_once(':')
                    .with_context(|| format!("bad format: {spec}"))?;
                list.push(berth_api::WeightDevice {
                    path: path.to_string(),
                    weight: w
                        .parse()
                        .with_context(|| format!("invalid weight for device: {spec}"))?,
                });
            }
            hc.blkio_weight_device = Some(list);
        }
        let rates =
            |v: &Vec<String>, bytes: bool| -> Result<Option<Vec<berth_api::ThrottleDevice>>> {
                if v.is_empty() {
                    return Ok(None);
                }
                v.iter()
                    .map(|s| throttle(s, bytes))
                    .collect::<Result<_>>()
                    .map(Some)
            };
        hc.blkio_device_read_bps = rates(&self.device_read_bps, true)?;
        hc.blkio_device_write_bps = rates(&self.device_write_bps, true)?;
        hc.blkio_device_read_iops = rates(&self.device_read_iops, false)?;
        hc.blkio_device_write_iops = rates(&self.device_write_iops, false)?;
        Ok(())
    }
}

fn security_opt(opt: &str) -> Result<String> {
    let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
        return Ok(opt.to_string());
    };
    if key != "seccomp" || value == "unconfined" || value == "builtin" {
        return Ok(opt.to_string());
    }
    let text = std::fs::read_to_string(value)
        .with_context(|| format!("opening seccomp profile ({value}) failed"))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("compacting json for seccomp profile ({value}) failed"))?;
    Ok(format!("seccomp={json}"))
}

/// A Go duration ("500ms", "1m30s", "2h") in nanoseconds.
pub fn go_duration_ns(s: &str) -> Result<i64> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let bad = || anyhow::anyhow!("invalid duration {s:?}");
    while let Some(ch) = chars.next() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let mut unit = ch.to_string();
        while chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            unit.push(chars.next().expect("peeked"));
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total as i64)
}

/// Docker's RAMInBytes (`-m 64m`), with berth's error.
pub fn parse_bytes(s: &str) -> Result<i64> {
    berth_api::parse_size(s).with_context(|| format!("invalid size: '{s}'"))
}

fn read_env_file(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.contains(char::is_whitespace) && !l.contains('=') {
            bail!(
                "{path}: line {}: variable '{l}' contains whitespaces",
                i + 1
            );
        }
        out.push(expand_env(line));
    }
    Ok(out)
}

/// `-e KEY` without a value takes KEY from the environment (and is dropped if unset).
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        std::env::var(e)
            .map(|v| format!("{e}={v}"))
            .unwrap_or_else(|_| e.to_string())
    }
}

pub fn create_request(o: &CreateOpts, detach: bool) -> Result<(String, ContainerCreateRequest)> {
    let (image, cmd) = o
        .image_and_command
        .split_first()
        .expect("clap requires the image");
    if image.starts_with('-') {
        bail!("unknown flag: {image}");
    }
    let mut env = Vec::new();
    for f in &o.env_file {
        env.extend(read_env_file(f)?);
    }
    env.extend(
        o.env
            .iter()
            .map(|e| expand_env(e))
            .filter(|e| e.contains('=')),
    );
    let mut labels = BTreeMap::new();
    for l in &o.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut req = ContainerCreateRequest::default();
    let c = &mut req.config;
    c.image = image.clone();
    c.cmd = (!cmd.is_empty()).then(|| cmd.to_vec());
    c.entrypoint = o.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            vec![String::new()]
        } else {
            vec![e.clone()]
        }
    });
    c.env = Some(env);
    c.labels = Some(labels);
    c.working_dir = o.workdir.clone().unwrap_or_default();
    c.user = o.user.clone().unwrap_or_default();
    c.hostname = o.hostname.clone().unwrap_or_default();
    c.domainname = o.domainname.clone().unwrap_or_default();
    c.stop_signal = o.stop_signal.clone();
    if o.no_healthcheck {
        if o.health_cmd.is_some() {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        c.healthcheck = Some(serde_json::json!({ "Test": ["NONE"] }));
    } else if o.health_cmd.is_some() || o.health_interval.is_some() || o.health_retries.is_some() {
        let d = |v: &Option<String>| {
            v.as_deref()
                .map(go_duration_ns)
                .transpose()
                .map(|x| x.unwrap_or(0))
        };
        c.healthcheck = Some(serde_json::json!({
            "Test": o.health_cmd.as_ref().map(|cmd| vec!["CMD-SHELL".to_string(), cmd.clone()]),
            "Interval": d(&o.health_interval)?,
            "Timeout": d(&o.health_timeout)?,
            "StartPeriod": d(&o.health_start_period)?,
            "Retries": o.health_retries.unwrap_or(0),
        }));
    }
    c.stop_timeout = o.stop_timeout;
    c.tty = o.tty;
    c.open_stdin = o.interactive;
    c.attach_stdin = !detach && o.attached("stdin");
    c.stdin_once = c.attach_stdin && o.interactive;
    c.attach_stdout = !detach && o.attached("stdout");
    c.attach_stderr = !detach && o.attached("stderr");
    let mut hc = HostConfig {
        auto_remove: o.rm,
        ..Default::default()
    };
    req.networking_config = o.net.apply(&mut req.config, &mut hc)?;
    o.storage.apply(&mut req.config, &mut hc)?;
    hc.log_config.kind = o.log_driver.clone().unwrap_or_default();
    if !o.log_opt.is_empty() {
        let mut opts = BTreeMap::new();
        for kv in &o.log_opt {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("invalid log-opt: {kv}"))?;
            opts.insert(k.to_string(), v.to_string());
        }
        hc.log_config.config = Some(opts);
    }
    if o.tty {
        if let Some((rows, cols)) = crate::terminal::size() {
            hc.other
                .insert("ConsoleSize".into(), serde_json::json!([rows, cols]));
        }
    }
    if let Some(m) = &o.memory {
        hc.memory = parse_bytes(m)?;
    }
    hc.pids_limit = o.pids_limit;
    for (k, v) in memory_fields(
        o.memory_reservation.as_deref(),
        o.memory_swap.as_deref(),
        o.blkio_weight,
        o.cpuset_mems.as_deref(),
    )? {
        hc.other.insert(k, v);
    }
    hc.nano_cpus = o.cpus.map_or(0, |c| (c * 1e9) as i64);
    hc.cpu_shares = o.cpu_shares.unwrap_or(0);
    hc.cpu_quota = o.cpu_quota.unwrap_or(0);
    hc.cpu_period = o.cpu_period.unwrap_or(0);
    hc.cpuset_cpus = o.cpuset_cpus.clone().unwrap_or_default();
    hc.init = o.init.then_some(true);
    let (policy, retries) = o
        .restart
        .split_once(':')
        .unwrap_or((o.restart.as_str(), "0"));
    hc.restart_policy.name = policy.to_string();
    hc.restart_policy.maximum_retry_count = retries.parse().with_context(|| {
        format!("invalid restart policy format: maximum retry count must be an integer: {retries}")
    })?;
    if !o.ulimit.is_empty() {
        let mut list = Vec::new();
        for u in &o.ulimit {
            let (name, vals) = u
                .split_once('=')
                .with_context(|| format!("invalid ulimit argument: {u}"))?;
            let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
            let num = |v: &str| {
                v.parse::<i64>()
                    .with_context(|| format!("invalid ulimit argument: {u}"))
            };
            list.push(berth_api::Ulimit {
                name: name.to_string(),
                soft: num(soft)?,
                hard: num(hard)?,
            });
        }
        hc.ulimits = Some(list);
    }
    o.privileges.apply(&mut hc)?;
    if !o.security_opt.is_empty() {
        let opts = o
            .security_opt
            .iter()
            .map(|opt| security_opt(opt))
            .collect::<Result<Vec<_>>>()?;
        hc.other
            .insert("SecurityOpt".into(), serde_json::json!(opts));
    }
    req.host_config = Some(hc);
    if !["missing", "never", "always"].contains(&o.pull.as_str()) {
        bail!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            o.pull
        );
    }
    Ok((image.clone(), req))
}

/// The HostConfig fields of `--memory-reservation`, `--memory-swap` (-1: unlimited),
/// `--blkio-weight` and `--cpuset-mems` (for run, create and update).
pub fn memory_fields(
    reservation: Option<&str>,
    swap: Option<&str>,
    blkio_weight: Option<u16>,
    cpuset_mems: Option<&str>,
) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    if let Some(r) = reservation {
        out.push(("MemoryReservation".to_string(), json!(parse_bytes(r)?)));
    }
    if let Some(s) = swap {
        let v = if s == "-1" { -1 } else { parse_bytes(s)? };
        out.push(("MemorySwap".to_string(), json!(v)));
    }
    if let Some(w) = blkio_weight {
        out.push(("BlkioWeight".to_string(), json!(w)));
    }
    if let Some(m) = cpuset_mems {
        out.push(("CpusetMems".to_string(), json!(m)));
    }
    Ok(out)
}

/// `-a`'s values, in Docker's spelling (any case).
fn parse_stream(s: &str) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    match l.as_str() {
        "stdin" | "stdout" | "stderr" => Ok(l),
        _ => Err(format!(
            "invalid argument \"{s}\": valid streams are STDIN, STDOUT and STDERR"
        )),
    }
}

impl CreateOpts {
    /// Whether a foreground run attaches `stream`: those `-a` names, or else
    /// stdout, stderr, and stdin with `-i`.
    pub fn attached(&self, stream: &str) -> bool {
        if self.attach.is_empty() {
            stream != "stdin" || self.interactive
        } else {
            self.attach.iter().any(|a| a == stream)
        }
    }
}
