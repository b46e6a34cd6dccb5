//! `berth exec` and `berth attach`.

use crate::client::{enc, Client};
use crate::containers::{proxy_signals, stream};
use anyhow::{Context, Result};
use berth_api::{ExecConfig, ExecInspect};
use clap::Args;
use http_body_util::BodyExt;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct ExecOpts {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// The container, then the command and its arguments
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub target: Vec<String>,
}

pub async fn exec(c: &Client, o: &ExecOpts) -> Result<i32> {
    let (container, cmd) = o.target.split_first().expect("clap requires two");
    let config = ExecConfig {
        attach_stdin: o.interactive && !o.detach,
        attach_stdout: !o.detach,
        attach_stderr: !o.detach,
        detach_keys: o.detach_keys.clone().unwrap_or_default(),
        tty: o.tty,
        env: Some(o.env.clone()),
        cmd: Some(cmd.to_vec()),
        user: o.user.clone().unwrap_or_default(),
        working_dir: o.workdir.clone().unwrap_or_default(),
        privileged: o.privileged,
        console_size: crate::terminal::size()
            .filter(|_| o.tty)
            .map(|(r, c)| vec![r, c]),
    };
    let resp = c
        .post_json(&format!("/containers/{}/exec", enc(container)), &config)
        .await?;
    let body = resp.into_body().collect().await?.to_bytes();
    let id = serde_json::from_slice::<Value>(&body)?["Id"]
        .as_str()
        .context("the daemon gave no exec id")?
        .to_string();
    if o.detach {
        c.post_json(
            &format!("/exec/{id}/start"),
            &serde_json::json!({ "Detach": true }),
        )
        .await?;
        return Ok(0);
    }
    let conn = c.upgrade(&format!("/exec/{id}/start")).await?;
    stream(c, conn, o.tty, o.interactive, &format!("/exec/{id}")).await?;
    let info: ExecInspect = c.get_json(&format!("/exec/{id}/json")).await?;
    Ok(info.exit_code.unwrap_or(0) as i32)
}

#[derive(Debug, Args)]
pub struct AttachOpts {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    pub container: String,
}

/// `berth start -a [-i]`: attaches before starting, so no output is missed, and
/// exits with the container's status (0 if detached while it runs).
pub async fn start_attached(
    c: &Client,
    name: &str,
    interactive: bool,
    detach_keys: Option<&str>,
) -> Result<i32> {
    let info: Value = c
        .get_json(&format!("/containers/{}/json", enc(name)))
        .await?;
    let id = info["Id"]
        .as_str()
        .context("the daemon gave no container id")?
        .to_string();
    let tty = info["Config"]["Tty"] == Value::Bool(true);
    let stdin = interactive && info["Config"]["OpenStdin"] == Value::Bool(true);
    let mut q = format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1");
    if stdin {
        q.push_str("&stdin=1");
    }
    if let Some(k) = detach_keys {
        q.push_str(&format!("&detachKeys={}", enc(k)));
    }
    let conn = c.upgrade(&q).await?;
    let wait = c
        .post(&format!("/containers/{id}/wait?condition=next-exit"))
        .await?;
    if let Err(e) = c.post(&format!("/containers/{id}/start")).await {
        eprintln!("berth: {e}");
        return Ok(1);
    }
    let _proxy = if tty {
        None
    } else {
        Some(proxy_signals(c, &id)?)
    };
    stream(c, conn, tty, stdin, &format!("/containers/{id}")).await?;
    exit_status(wait).await
}

/// After an attached stream ends: the container's exit code from `wait` (a
/// `next-exit` wait sent before the stream could end). The stream ends as the
/// container's output closes, a moment before its exit is recorded; if no exit
/// comes within a second, the client detached and the container runs on: 0.
async fn exit_status(wait: hyper::Response<hyper::body::Incoming>) -> Result<i32> {
    let body = match tokio::time::timeout(
        std::time::Duration::from_secs(1),
        wait.into_body().collect(),
    )
    .await
    {
        Ok(body) => body?.to_bytes(),
        Err(_) => return Ok(0),
    };
    let w: berth_api::WaitResponse =
        serde_json::from_slice(&body).context("decoding the wait result")?;
    Ok(w.status_code as i32)
}

pub async fn attach(c: &Client, o: &AttachOpts) -> Result<i32> {
    let info: Value = c
        .get_json(&format!("/containers/{}/json", enc(&o.container)))
        .await?;
    let id = info["Id"]
        .as_str()
        .context("the daemon gave no container id")?
        .to_string();
    if info["State"]["Running"] != Value::Bool(true) {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    let tty = info["Config"]["Tty"] == Value::Bool(true);
    let stdin = info["Config"]["OpenStdin"] == Value::Bool(true) && !o.no_stdin;
    let mut q = format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1");
    if stdin {
        q.push_str("&stdin=1");
    }
    if let Some(k) = &o.detach_keys {
        q.push_str(&format!("&detachKeys={}", enc(k)));
    }
    let conn = c.upgrade(&q).await?;
    let wait = c
        .post(&format!("/containers/{id}/wait?condition=next-exit"))
        .await?;
    let _proxy = if o.sig_proxy && !tty {
        Some(proxy_signals(c, &id)?)
    } else {
        None
    };
    stream(c, conn, tty, stdin, &format!("/containers/{id}")).await?;
    exit_status(wait).await
}
