//! Container commands: run, create, start, stop, kill, restart, rm, ps, logs, wait,
//! inspect.

use crate::client::{enc, Client, DaemonError};
use crate::format::{print_rows, Template};
use crate::terminal;
use anyhow::{bail, Context, Result};
use berth_api::{ContainerCreateResponse, ContainerSummary, WaitResponse};
use clap::Args;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

pub use crate::create::{create_request, memory_fields, parse_bytes, CreateOpts};

pub async fn create(c: &Client, o: &CreateOpts, detach: bool) -> Result<String> {
    let (image, req) = create_request(o, detach)?;
    let mut query = Vec::new();
    if let Some(n) = &o.name {
        query.push(format!("name={}", enc(n)));
    }
    if let Some(p) = o.privileges.platform.as_deref().filter(|p| !p.is_empty()) {
        query.push(format!("platform={}", enc(p)));
    }
    let mut path = "/containers/create".to_string();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let pull = |c: &Client| {
        let image = image.clone();
        let c = c.clone();
        let platform = o.privileges.platform.clone();
        async move {
            // Progress goes to stderr, so that `-d` prints only the id on stdout.
            let code = crate::registry::pull_to_stderr(&c, &image, platform.as_deref()).await?;
            if code != 0 {
                bail!("pulling {image} failed");
            }
            Ok::<_, anyhow::Error>(())
        }
    };
    if o.pull == "always" {
        pull(c).await?;
    }
    let mut first = c.post_json(&path, &req).await;
    if o.pull == "missing" {
        if let Err(e) = &first {
            if e.downcast_ref::<DaemonError>().is_some_and(|d| {
                d.status == hyper::StatusCode::NOT_FOUND
                    && (d.message.starts_with("No such image")
                        || d.message.contains("does not match the specified platform"))
            }) {
                let shown = if image.contains(':') || image.contains('@') {
                    image.clone()
                } else {
                    format!("{image}:latest")
                };
                eprintln!("Unable to find image '{shown}' locally");
                pull(c).await?;
                first = c.post_json(&path, &req).await;
            }
        }
    }
    match first {
        Ok(resp) => {
            let body = resp.into_body().collect().await?.to_bytes();
            let r: ContainerCreateResponse = serde_json::from_slice(&body)?;
            for w in r.warnings {
                eprintln!("WARNING: {w}");
            }
            Ok(r.id)
        }
        Err(e) => {
            if let Some(d) = e.downcast_ref::<DaemonError>() {
                if d.status == hyper::StatusCode::NOT_FOUND
                    && d.message.starts_with("No such image")
                {
                    let shown = if image.contains(':') || image.contains('@') {
                        image.clone()
                    } else {
                        format!("{image}:latest")
                    };
                    eprintln!("Unable to find image '{shown}' locally");
                }
            }
            Err(e)
        }
    }
}

/// Splits Docker's multiplexed stream onto our stdout and stderr.
async fn demux<R: AsyncRead + Unpin>(mut r: R) -> Result<()> {
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut header = [0u8; 8];
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await?;
        if header[0] == 2 {
            err.write_all(&buf).await?;
            err.flush().await?;
        } else {
            out.write_all(&buf).await?;
            out.flush().await?;
        }
    }
    Ok(())
}

/// Runs an attached stream: our stdin to it when `interactive` (its end half-closes
/// the connection), our terminal raw and its size followed when `tty` (`target` is
/// where resizes go), and its output to our stdout/stderr.
pub async fn stream<S: AsyncRead + tokio::io::AsyncWrite + Send + 'static>(
    c: &Client,
    conn: S,
    tty: bool,
    interactive: bool,
    target: &str,
) -> Result<()> {
    let (reader, mut writer) = tokio::io::split(conn);
    if interactive {
        // Not awaited: when the stream is done, berth exits even if stdin is open.
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut writer).await;
            let _ = writer.shutdown().await;
        });
    }
    let raw = if tty {
        terminal::follow(c, target).await
    } else {
        None
    };
    if tty {
        let mut reader = reader;
        tokio::io::copy(&mut reader, &mut tokio::io::stdout()).await?;
    } else {
        demux(reader).await?;
    }
    drop(raw);
    Ok(())
}

/// Docker's exit status for a failed start: 127 not found, 126 cannot run, 125 else.
fn start_failure_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

/// `--sig-proxy`: the signals berth receives go to the container instead, as with
/// Docker's CLI; not with a TTY, where the terminal carries them. The returned
/// guard stops the forwarding (the signals stay caught until berth exits).
pub fn proxy_signals(c: &Client, id: &str) -> Result<SignalProxy> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        ("SIGHUP", SignalKind::hangup()),
        ("SIGINT", SignalKind::interrupt()),
        ("SIGQUIT", SignalKind::quit()),
        ("SIGTERM", SignalKind::terminate()),
        ("SIGUSR1", SignalKind::user_defined1()),
        ("SIGUSR2", SignalKind::user_defined2()),
    ];
    let mut tasks = Vec::new();
    for (name, kind) in kinds {
        let mut sig = signal(kind).with_context(|| format!("catching {name}"))?;
        let (c, id) = (c.clone(), id.to_string());
        tasks.push(tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let path = format!("/containers/{id}/kill?signal={name}");
                if let Err(e) = c.post(&path).await {
                    eprintln!("berth: forwarding {name}: {e}");
                }
            }
        }));
    }
    Ok(SignalProxy(tasks))
}

pub struct SignalProxy(Vec<tokio::task::JoinHandle<()>>);

impl Drop for SignalProxy {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

pub async fn run(c: &Client, o: &CreateOpts, detach: bool, sig_proxy: bool) -> Result<i32> {
    if detach && !o.attach.is_empty() {
        eprintln!("berth: Conflicting options: -a and -d");
        return Ok(125);
    }
    let id = match create(c, o, detach).await {
        Ok(id) => id,
        Err(e) => {
            eprintln!("berth: {e}");
            return Ok(125);
        }
    };
    if detach {
        if let Err(e) = c.post(&format!("/containers/{id}/start")).await {
            eprintln!("berth: {e}");
            return Ok(start_failure_code(&e.to_string()));
        }
        println!("{id}");
        return Ok(0);
    }
    let mut q = format!("/containers/{id}/attach?stream=1");
    for s in ["stdin", "stdout", "stderr"] {
        if o.attached(s) {
            q.push_str(&format!("&{s}=1"));
        }
    }
    let stdin = o.interactive && o.attached("stdin");
    let attach = match c.upgrade(&q).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth: {e}");
            if o.rm {
                let _ = c.delete(&format!("/containers/{id}?force=1")).await;
            }
            return Ok(125);
        }
    };
    let cond = if o.rm { "removed" } else { "next-exit" };
    let wait = c
        .post(&format!("/containers/{id}/wait?condition={cond}"))
        .await?;
    if let Err(e) = c.post(&format!("/containers/{id}/start")).await {
        eprintln!("berth: {e}");
        return Ok(start_failure_code(&e.to_string()));
    }
    let _proxy = if sig_proxy && !o.tty {
        Some(proxy_signals(c, &id)?)
    } else {
        None
    };
    stream(c, attach, o.tty, stdin, &format!("/containers/{id}")).await?;
    let body = wait.into_body().collect().await?.to_bytes();
    let w: WaitResponse = serde_json::from_slice(&body).context("decoding the wait result")?;
    if let Some(e) = w.error {
        eprintln!("berth: {}", e.message);
    }
    Ok(w.status_code as i32)
}

/// Runs `f` for each name, printing the name on success and Docker's error on
/// failure; the exit code is 1 if any failed.
pub async fn each<F, Fut>(names: &[String], print: bool, f: F) -> Result<i32>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut code = 0;
    for n in names {
        match f(n.clone()).await {
            Ok(()) => {
                if print {
                    println!("{n}");
                }
            }
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

#[derive(Debug, Args)]
pub struct PsOpts {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'
    #[arg(long)]
    pub format: Option<String>,
}

pub fn filters_param(filters: &[String]) -> Result<String> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(enc(&serde_json::to_string(&m)?))
}

/// The PORTS column as the docker CLI writes it: `IP:PUBLIC->PRIVATE/TYPE` for a
/// published port (`[::]:8080->80/tcp` for an IPv6 address, as docker 28 writes
/// it), `PRIVATE/TYPE` for an exposed one.
fn ports_column(ports: &[berth_api::Port]) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in ports {
        let (private, kind) = (p.private_port, &p.kind);
        let item = match p.public_port {
            Some(public) => {
                let ip = p.ip.as_deref().unwrap_or("");
                if ip.contains(':') {
                    format!("[{ip}]:{public}->{private}/{kind}")
                } else {
                    format!("{ip}:{public}->{private}/{kind}")
                }
            }
            None => format!("{private}/{kind}"),
        };
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out.join(", ")
}

fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

fn ago(unix: i64) -> String {
    let d = chrono::Utc::now() - chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    format!("{} ago", berth_api::human_duration(d.num_seconds()))
}

pub async fn ps(c: &Client, o: &PsOpts) -> Result<i32> {
    let mut q = format!("/containers/json?filters={}", filters_param(&o.filter)?);
    let limit = if o.latest { 1 } else { o.last };
    if o.all || limit > 0 {
        q.push_str("&all=1");
    }
    if limit > 0 {
        q.push_str(&format!("&limit={limit}"));
    }
    let list: Vec<ContainerSummary> = c.get_json(&q).await?;
    if o.quiet {
        for s in &list {
            println!(
                "{}",
                if o.no_trunc {
                    s.id.clone()
                } else {
                    s.id[..12].to_string()
                }
            );
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|s| {
            let command = format!("{:?}", if o.no_trunc { s.command.clone() } else { ellipsis(&s.command, 20) });
            let labels = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let created = chrono::DateTime::from_timestamp(s.created, 0).unwrap_or_default();
            json!({
                "ID": if o.no_trunc { s.id.clone() } else { s.id[..12].to_string() },
                "Image": s.image,
                "Command": command,
                "CreatedAt": created.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
                "RunningFor": ago(s.created),
                "Ports": ports_column(&s.ports),
                "State": s.state,
                "Status": s.status,
                "Size": match (s.size_rw, s.size_root_fs) {
                    (Some(rw), Some(root)) => format!(
                        "{} (virtual {})",
                        crate::images::human_size(rw),
                        crate::images::human_size(root)
                    ),
                    _ => String::new(),
                },
                "Names": s.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
                "Labels": labels,
                "LabelMap": s.labels,
                "Mounts": s
                    .mounts
                    .iter()
                    .filter_map(|m| {
                        m.get("Name")
                            .and_then(Value::as_str)
                            .filter(|n| !n.is_empty())
                            .or_else(|| m.get("Source").and_then(Value::as_str))
                            .map(String::from)
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                "Networks": if s.network_settings.networks.is_empty() {
                    s.host_config.network_mode.clone()
                } else {
                    s.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(",")
                },
            })
        })
        .collect();
    let headers = json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
        "Names": "NAMES", "Labels": "LABELS", "LabelMap": {}, "Mounts": "MOUNTS", "Networks": "NETWORKS",
    });
    let default = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
    let fmt = o
        .format
        .as_deref()
        .map(|f| if f == "table" { default } else { f });
    print_rows(fmt, default, &headers, &rows)?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct LogsOpts {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

/// Docker's since/until values: a duration before now ("10m", "1h30m"), an RFC 3339
/// time, or Unix seconds; sent as Unix seconds.
pub fn time_arg(s: &str) -> Result<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_string());
    }
    let mut total = 0f64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let n: f64 = num
            .parse()
            .with_context(|| format!("invalid time value {s:?}"))?;
        num.clear();
        total += n * match ch {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => bail!("invalid time value {s:?}"),
        };
    }
    if !num.is_empty() {
        bail!("invalid time value {s:?}: missing unit");
    }
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    Ok(format!("{:.6}", now - total))
}

pub async fn logs(c: &Client, o: &LogsOpts) -> Result<i32> {
    let info: Value = c
        .get_json(&format!("/containers/{}/json", enc(&o.container)))
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut q = format!(
        "/containers/{}/logs?stdout=1&stderr=1&tail={}",
        enc(&o.container),
        enc(&o.tail)
    );
    if o.follow {
        q.push_str("&follow=1");
    }
    if o.timestamps {
        q.push_str("&timestamps=1");
    }
    if let Some(s) = &o.since {
        q.push_str(&format!("&since={}", time_arg(s)?));
    }
    if let Some(u) = &o.until {
        q.push_str(&format!("&until={}", time_arg(u)?));
    }
    let resp = c.get(&q).await?;
    let body = http_body_util::BodyStream::new(resp.into_body());
    let reader = tokio_util_reader(body);
    if tty {
        let mut r = reader;
        tokio::io::copy(&mut r, &mut tokio::io::stdout()).await?;
    } else {
        demux(reader).await?;
    }
    Ok(0)
}

/// An AsyncRead over a response body.
fn tokio_util_reader(body: http_body_util::BodyStream<hyper::body::Incoming>) -> BodyRead {
    BodyRead {
        body,
        buf: bytes::Bytes::new(),
    }
}

pub struct BodyRead {
    body: http_body_util::BodyStream<hyper::body::Incoming>,
    buf: bytes::Bytes,
}

impl AsyncRead for BodyRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use hyper::body::Body;
        loop {
            if !self.buf.is_empty() {
                let n = out.remaining().min(self.buf.len());
                let chunk = self.buf.split_to(n);
                out.put_slice(&chunk);
                return std::task::Poll::Ready(Ok(()));
            }
            let body = std::pin::Pin::new(&mut self.body);
            match body.poll_frame(cx) {
                std::task::Poll::Pending => return std::task::Poll::Pending,
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(())),
                std::task::Poll::Ready(Some(Err(e))) => {
                    return std::task::Poll::Ready(Err(std::io::Error::other(e)))
                }
                std::task::Poll::Ready(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        self.buf = d;
                    }
                }
            }
        }
    }
}

pub async fn inspect(
    c: &Client,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
) -> Result<i32> {
    let t = format.map(Template::parse).transpose()?;
    let mut found = Vec::new();
    let mut code = 0;
    for n in names {
        let mut hit = None;
        if kind != Some("image") {
            if let Ok(v) = c
                .get_json::<Value>(&format!("/containers/{}/json", enc(n)))
                .await
            {
                hit = Some(v);
            }
        }
        if hit.is_none() && kind != Some("container") {
            if let Ok(v) = c
                .get_json::<Value>(&format!("/images/{}/json", enc(n)))
                .await
            {
                hit = Some(v);
            }
        }
        match hit {
            Some(v) => found.push(v),
            None => {
                eprintln!("Error: No such object: {n}");
                code = 1;
            }
        }
    }
    match t {
        Some(t) => {
            for v in &found {
                println!("{}", t.render(v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&found)?),
    }
    Ok(code)
}

pub async fn wait(c: &Client, names: &[String]) -> Result<i32> {
    let mut code = 0;
    for n in names {
        match c.post(&format!("/containers/{}/wait", enc(n))).await {
            Ok(resp) => {
                let body = resp.into_body().collect().await?.to_bytes();
                let w: WaitResponse = serde_json::from_slice(&body)?;
                println!("{}", w.status_code);
            }
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::go_duration_ns;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(go_duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert!(go_duration_ns("5").is_err());
        assert!(go_duration_ns("3x").is_err());
    }

    #[test]
    fn relative_times() {
        assert_eq!(time_arg("1700000000").unwrap(), "1700000000");
        assert_eq!(
            time_arg("2024-01-01T00:00:00Z").unwrap(),
            "1704067200.000000000"
        );
        let t: f64 = time_arg("1m").unwrap().parse().unwrap();
        let now = chrono::Utc::now().timestamp() as f64;
        assert!((now - 60.0 - t).abs() < 5.0);
        assert!(time_arg("5x").is_err());
    }

    #[test]
    fn command_column_is_truncated() {
        assert_eq!(ellipsis("sleep 1000", 20), "sleep 1000");
        assert_eq!(
            ellipsis("sh -c 'a very long command'", 20),
            "sh -c 'a very long …"
        );
    }
}

#[derive(Debug, Args, Clone)]
pub struct UpdateOpts {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `berth update`: the same request the docker CLI sends.
pub async fn update(c: &Client, o: &UpdateOpts) -> Result<i32> {
    let mut body = serde_json::Map::new();
    if let Some(m) = &o.memory {
        body.insert("Memory".into(), json!(parse_bytes(m)?));
    }
    for (k, v) in memory_fields(
        o.memory_reservation.as_deref(),
        o.memory_swap.as_deref(),
        o.blkio_weight,
        o.cpuset_mems.as_deref(),
    )? {
        body.insert(k, v);
    }
    if let Some(p) = o.pids_limit {
        body.insert("PidsLimit".into(), json!(p));
    }
    if let Some(cpus) = o.cpus {
        body.insert("NanoCpus".into(), json!((cpus * 1e9) as i64));
    }
    for (k, v) in [
        ("CpuShares", o.cpu_shares),
        ("CpuQuota", o.cpu_quota),
        ("CpuPeriod", o.cpu_period),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    if let Some(s) = &o.cpuset_cpus {
        body.insert("CpusetCpus".into(), json!(s));
    }
    if let Some(r) = &o.restart {
        let (name, n) = r.split_once(':').unwrap_or((r.as_str(), "0"));
        let n: i64 = n.parse().with_context(|| {
            format!("invalid restart policy format: maximum retry count must be an integer: {n}")
        })?;
        body.insert(
            "RestartPolicy".into(),
            json!({ "Name": name, "MaximumRetryCount": n }),
        );
    }
    if body.is_empty() {
        bail!("you must provide one or more flags when using this command");
    }
    let body = Value::Object(body);
    each(&o.containers, true, |n| {
        let body = body.clone();
        async move {
            c.post_json(&format!("/containers/{}/update", enc(&n)), &body)
                .await?;
            Ok(())
        }
    })
    .await
}
