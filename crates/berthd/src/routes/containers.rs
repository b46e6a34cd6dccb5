use super::{Call, Daemon};
use crate::engine::containers::{Changed, WaitCondition};
use crate::engine::logs::{parse_unix_nanos, LogOptions};
use crate::error::{ApiError, ApiResult};
use crate::http::{self, Resp};
use berth_runtime::shimproto::{WANT_STDERR, WANT_STDOUT};
use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn changed(c: Changed) -> Resp {
    http::empty(match c {
        Changed::Yes => StatusCode::NO_CONTENT,
        Changed::AlreadyDone => StatusCode::NOT_MODIFIED,
    })
}

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    let cs = &d.containers;
    let q = &call.query;
    Ok(Some(match (&call.method, segs) {
        (&Method::POST, ["create"]) => {
            let name = q.get("name").map(String::from);
            if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
                let want = format!("linux/{}", berth_image::host_arch());
                if p != "linux" && !p.starts_with(&want) {
                    return Err(ApiError::invalid(format!(
                        "requested platform {p} does not match this host ({want})"
                    )));
                }
            }
            let body = call.take_body()?;
            let req = http::read_json(body).await?;
            let r = cs.create(name.as_deref(), req)?;
            http::json(StatusCode::CREATED, &r)
        }
        (&Method::GET, ["json"]) => {
            let list = cs.list(q.flag("all"), q.int("limit")?, &q.filters()?)?;
            http::json(StatusCode::OK, &list)
        }
        (&Method::GET, [id, "json"]) => http::json(StatusCode::OK, &cs.inspect(id)?),
        (&Method::POST, [id, "start"]) => changed(cs.start(id).await?),
        (&Method::POST, [id, "stop"]) => changed(cs.stop(id, q.get("signal"), q.int("t")?).await?),
        (&Method::POST, [id, "restart"]) => {
            cs.restart(id, q.int("t")?).await?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, [id, "kill"]) => {
            cs.kill(id, q.get("signal"))?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, [id, "wait"]) => {
            let cond = match q.get("condition").unwrap_or("") {
                "" | "not-running" => WaitCondition::NotRunning,
                "next-exit" => WaitCondition::NextExit,
                "removed" => WaitCondition::Removed,
                other => return Err(ApiError::invalid(format!("invalid condition: \"{other}\""))),
            };
            let fut = cs.wait(id, cond)?;
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                let r = fut.await;
                let _ = tx
                    .send(Bytes::from(serde_json::to_vec(&r).expect("serialises")))
                    .await;
            });
            // The headers go out now, before the container even starts: the client
            // knows its wait is registered (moby's postContainersWait).
            http::stream(StatusCode::OK, "application/json", rx)
        }
        (&Method::DELETE, [id]) => {
            if q.flag("link") {
                return Err(ApiError::not_implemented(
                    "berth does not support links yet",
                ));
            }
            cs.remove(id, q.flag("force")).await?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::GET, [id, "logs"]) => {
            let opts = LogOptions {
                stdout: q.flag("stdout"),
                stderr: q.flag("stderr"),
                follow: q.flag("follow"),
                timestamps: q.flag("timestamps"),
                tail: match q.get("tail") {
                    None | Some("") | Some("all") => None,
                    Some(n) => Some(n.parse::<i64>().map(|n| n.max(0) as usize).map_err(|_| {
                        ApiError::invalid(format!("invalid value for tail: {n:?}"))
                    })?),
                },
                since: time_param(q.get("since"), "since")?,
                until: time_param(q.get("until"), "until")?,
            };
            if !opts.stdout && !opts.stderr {
                return Err(ApiError::invalid(
                    "Bad parameters: you must choose at least one stream",
                ));
            }
            let (tty, rx) = cs.logs(id, opts).await?;
            http::stream(StatusCode::OK, content_type(tty), rx)
        }
        (&Method::POST, [id, "attach"]) => attach(d, call, id).await?,
        _ => return Ok(None),
    }))
}

fn time_param(v: Option<&str>, name: &str) -> ApiResult<Option<i128>> {
    match v {
        None | Some("") | Some("0") => Ok(None),
        Some(s) => parse_unix_nanos(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("invalid value for {name}: {s:?}"))),
    }
}

fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// `POST /containers/{id}/attach`: upgrades the connection (or, for clients that do
/// not ask for an upgrade, streams a response body) and relays the container's output.
async fn attach(d: &Arc<Daemon>, call: &mut Call, id: &str) -> ApiResult<Resp> {
    let q = &call.query;
    if q.flag("stdin") {
        return Err(ApiError::not_implemented(
            "berth does not support attaching stdin yet",
        ));
    }
    let c = d.containers.get(id)?;
    let tty = c.rec().config.tty;
    let mut want = 0;
    if q.flag("stdout") {
        want |= WANT_STDOUT;
    }
    if q.flag("stderr") {
        want |= WANT_STDERR;
    }
    let stream = q.flag("stream");
    let logs = q.flag("logs");
    let mut replay = None;
    if logs {
        let opts = LogOptions {
            stdout: want & WANT_STDOUT != 0,
            stderr: want & WANT_STDERR != 0,
            ..Default::default()
        };
        replay = Some(d.containers.logs(&c.id, opts).await?.1);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let containers = d.containers.clone();
    let cid = c.id.clone();
    tokio::spawn(async move {
        if let Some(mut r) = replay {
            while let Some(b) = r.recv().await {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        if !stream || want == 0 {
            return;
        }
        let Ok(mut shim) = containers.attach_output(&cid, want).await else {
            return;
        };
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                n = shim.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() { return },
                },
                _ = tx.closed() => return,
            }
        }
    });
    match call.upgrade.take() {
        Some(on_upgrade) => {
            tokio::spawn(relay_upgraded(on_upgrade, rx));
            Ok(Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("Content-Type", content_type(tty))
                .header("Connection", "Upgrade")
                .header("Upgrade", "tcp")
                .body(http::Body::Empty)
                .expect("valid response"))
        }
        None => Ok(http::stream(StatusCode::OK, content_type(tty), rx)),
    }
}

async fn relay_upgraded(on_upgrade: hyper::upgrade::OnUpgrade, mut rx: mpsc::Receiver<Bytes>) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
    // Client input (stdin) is not forwarded yet; reading it notices a hang-up.
    let mut sink = [0u8; 1024];
    let mut client_open = true;
    loop {
        tokio::select! {
            b = rx.recv() => match b {
                Some(b) => if writer.write_all(&b).await.is_err() { return },
                None => break,
            },
            n = reader.read(&mut sink), if client_open => {
                if matches!(n, Ok(0) | Err(_)) { client_open = false; }
            }
        }
    }
    let _ = writer.shutdown().await;
}
