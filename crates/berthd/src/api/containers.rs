use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::container::detach;
use crate::daemon::container::logs::LogOptions;
use crate::daemon::container::record::Exec;
use crate::daemon::container::start::AttachSource;
use crate::daemon::container::{Changed, WaitCondition};
use crate::daemon::services::Daemon;
use crate::daemon::time::parse_unix_nanos;
use crate::error::{ApiError, ApiResult};
use berth_runtime::shimproto::{
    input_frame, IN_CLOSE, IN_DATA, WANT_STDERR, WANT_STDIN, WANT_STDOUT,
};
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
            let list = cs.list(
                q.flag("all"),
                q.int("limit")?,
                &q.filters()?,
                q.flag("size"),
            )?;
            http::json(StatusCode::OK, &list)
        }
        (&Method::GET, [id, "json"]) => {
            http::json(StatusCode::OK, &cs.inspect(id, q.flag("size"))?)
        }
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
            cs.remove(id, q.flag("force"), q.flag("v")).await?;
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
        (&Method::POST, [id, "pause"]) => {
            cs.pause(id, true)?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, [id, "unpause"]) => {
            cs.pause(id, false)?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::HEAD | &Method::GET, [id, "archive"]) => {
            let path = q
                .get("path")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| ApiError::invalid("path is required"))?
                .to_string();
            let stat_header = |st: &crate::daemon::archive::cp::PathStat| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(st).expect("serialises"))
            };
            if call.method == Method::HEAD {
                let st = d.archive.archive_stat(id, &path).await?;
                let mut r = http::empty(StatusCode::OK);
                r.headers_mut().insert(
                    "X-Docker-Container-Path-Stat",
                    stat_header(&st).parse().expect("base64 is a valid header"),
                );
                r
            } else {
                let (st, rx) = d.archive.archive_get(id, &path).await?;
                let mut r = http::stream(StatusCode::OK, "application/x-tar", rx);
                r.headers_mut().insert(
                    "X-Docker-Container-Path-Stat",
                    stat_header(&st).parse().expect("base64 is a valid header"),
                );
                r
            }
        }
        (&Method::PUT, [id, "archive"]) => {
            let path = q
                .get("path")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| ApiError::invalid("path is required"))?
                .to_string();
            let reader = http::BodyReader::new(call.take_body()?);
            d.archive.archive_put(id, &path, reader).await?;
            http::empty(StatusCode::OK)
        }
        (&Method::GET, [id, "export"]) => {
            let rx = d.archive.export(id).await?;
            http::stream(StatusCode::OK, "application/x-tar", rx)
        }
        (&Method::GET, [id, "changes"]) => {
            let list: Vec<serde_json::Value> = d
                .archive
                .changes(id)?
                .into_iter()
                .map(|(path, kind)| serde_json::json!({ "Path": path, "Kind": kind }))
                .collect();
            http::json(StatusCode::OK, &list)
        }
        (&Method::POST, [id, "update"]) => {
            let body = call.take_body()?;
            let req: berth_api::ContainerUpdateRequest = http::read_json(body).await?;
            let warnings = cs.update(id, &req)?;
            http::json(
                StatusCode::OK,
                &berth_api::ContainerUpdateResponse { warnings },
            )
        }
        (&Method::POST, [id, "rename"]) => {
            cs.rename(id, q.get("name").unwrap_or(""))?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::GET, [id, "stats"]) => {
            // `stream` defaults to true; `one-shot` only matters without a stream.
            let stream = q.get("stream").is_none_or(|_| q.flag("stream"));
            let rx = cs.stats(id, stream)?;
            http::stream(StatusCode::OK, "application/json", rx)
        }
        (&Method::GET, [id, "top"]) => {
            let (titles, processes) = cs.top(id, q.get("ps_args").unwrap_or("")).await?;
            http::json(
                StatusCode::OK,
                &serde_json::json!({ "Titles": titles, "Processes": processes }),
            )
        }
        (&Method::POST, ["prune"]) => {
            let (deleted, reclaimed) = cs.prune(&q.filters()?)?;
            http::json(
                StatusCode::OK,
                &serde_json::json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }),
            )
        }
        (&Method::POST, [id, "exec"]) => {
            let body = call.take_body()?;
            let config = http::read_json(body).await?;
            let id = cs.exec_create(id, config)?;
            http::json(StatusCode::CREATED, &serde_json::json!({ "Id": id }))
        }
        (&Method::POST, [id, "resize"]) => {
            let dim = |k: &str| -> ApiResult<u16> {
                let v = q.int(k)?.unwrap_or(0);
                u16::try_from(v)
                    .map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v}")))
            };
            let (h, w) = (dim("h")?, dim("w")?);
            cs.resize(id, h, w).await?;
            http::empty(StatusCode::OK)
        }
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
/// not ask for an upgrade, streams a response body) and relays the container's
/// output, and its input when `stdin` is asked for and the container keeps stdin open.
async fn attach(d: &Arc<Daemon>, call: &mut Call, id: &str) -> ApiResult<Resp> {
    let q = &call.query;
    let c = d.containers.get(id)?;
    let (tty, open_stdin, stdin_once) = {
        let r = c.rec();
        (r.config.tty, r.config.open_stdin, r.config.stdin_once)
    };
    let keys = match q.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => detach::parse(k)?,
        None => detach::DEFAULT.to_vec(),
    };
    let mut want = 0;
    if q.flag("stdout") {
        want |= WANT_STDOUT;
    }
    if q.flag("stderr") {
        want |= WANT_STDERR;
    }
    // As in Docker, stdin is attached only to a container created with it open, and
    // only over a hijacked connection (a response body cannot carry input).
    if q.flag("stdin") && open_stdin && call.upgrade.is_some() {
        want |= WANT_STDIN;
    }
    let replay = if q.flag("logs") {
        let opts = LogOptions {
            stdout: want & WANT_STDOUT != 0,
            stderr: want & WANT_STDERR != 0,
            ..Default::default()
        };
        Some(d.containers.logs(&c.id, opts).await?.1)
    } else {
        None
    };
    // Registered before the answer goes out: a start the client sends next cannot
    // miss this attach.
    let source = if q.flag("stream") && want != 0 {
        Some(d.containers.register_attach(&c.id, want)?)
    } else {
        None
    };
    let session = Session {
        source,
        want,
        keys,
        stdin_once,
        exec: None,
        tty,
    };
    Ok(session.respond(call.upgrade.take(), replay))
}

/// One attach: what to relay between a client connection and a shim.
pub(super) struct Session {
    pub(super) source: Option<AttachSource>,
    pub(super) want: u8,
    pub(super) keys: Vec<u8>,
    pub(super) stdin_once: bool,
    /// For an exec: the stream ends only once its exit is recorded (clients inspect
    /// the exec for its exit code right after), and a failure to start is told in it.
    pub(super) exec: Option<Arc<Exec>>,
    pub(super) tty: bool,
}

impl Session {
    /// Answers an attach-like request: with an upgrade, 101 and the relay on the
    /// hijacked connection; without one (old clients), a streamed body, which can
    /// carry no input.
    pub(super) fn respond(
        self,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
        replay: Option<mpsc::Receiver<Bytes>>,
    ) -> Resp {
        let tty = self.tty;
        match upgrade {
            Some(on_upgrade) => {
                tokio::spawn(async move {
                    if let Ok(up) = on_upgrade.await {
                        self.relay(TokioIo::new(up), replay).await;
                    }
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("Content-Type", content_type(tty))
                    .header("Connection", "Upgrade")
                    .header("Upgrade", "tcp")
                    .body(http::Body::Empty)
                    .expect("valid response")
            }
            None => {
                let (tx, rx) = mpsc::channel::<Bytes>(16);
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                tokio::spawn(self.relay(ours, replay));
                tokio::spawn(async move {
                    let (mut r, _w) = tokio::io::split(theirs);
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = r.read(&mut buf).await {
                        if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                });
                http::stream(StatusCode::OK, content_type(tty), rx)
            }
        }
    }

    /// Waits for an exec's end and writes its start failure, if any, to the client.
    async fn exec_epilogue<W: tokio::io::AsyncWrite + Unpin>(&self, cw: &mut W) {
        let Some(e) = &self.exec else { return };
        let mut done = e.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
        let error = e.state().error.clone();
        if !error.is_empty() {
            let msg = format!("{error}\r\n");
            if !self.tty {
                let _ = cw
                    .write_all(&berth_runtime::shimproto::frame_header(2, msg.len()))
                    .await;
            }
            let _ = cw.write_all(msg.as_bytes()).await;
        }
    }

    pub(super) async fn relay<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(
        mut self,
        client: S,
        replay: Option<mpsc::Receiver<Bytes>>,
    ) {
        let (mut cr, mut cw) = tokio::io::split(client);
        if let Some(mut r) = replay {
            while let Some(b) = r.recv().await {
                if cw.write_all(&b).await.is_err() {
                    return;
                }
            }
        }
        let Some(source) = self.source.take() else {
            let _ = cw.shutdown().await;
            return;
        };
        let Some(shim) = source.connect().await else {
            self.exec_epilogue(&mut cw).await;
            let _ = cw.shutdown().await;
            return;
        };
        let (mut sr, mut sw) = shim.into_split();
        let output = async {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
            self.exec_epilogue(&mut cw).await;
            let _ = cw.shutdown().await;
        };
        let input = async {
            let mut buf = vec![0u8; 32 * 1024];
            if self.want & WANT_STDIN == 0 {
                // Nothing to forward; reading only notices the client leaving.
                while matches!(cr.read(&mut buf).await, Ok(n) if n > 0) {}
                return false;
            }
            let mut proxy = detach::EscapeProxy::new(self.keys.clone());
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        if self.stdin_once {
                            let _ = sw.write_all(&input_frame(IN_CLOSE, b"")).await;
                        }
                        return false;
                    }
                    Ok(n) => n,
                };
                let (data, detached) = proxy.feed(&buf[..n]);
                if !data.is_empty() && sw.write_all(&input_frame(IN_DATA, &data)).await.is_err() {
                    return false;
                }
                if detached {
                    return true;
                }
            }
        };
        tokio::pin!(output, input);
        tokio::select! {
            _ = &mut output => {}
            detached = &mut input => {
                // Detaching ends the attach at once; otherwise the output goes on
                // until the container's output ends.
                if !detached {
                    output.await;
                }
            }
        }
    }
}

/// `POST /commit`: a container's changes as a new image.
pub(super) async fn commit(d: &Arc<Daemon>, call: &mut Call) -> ApiResult<Resp> {
    let q = &call.query;
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::invalid("container is required"))?
        .to_string();
    let tag = match (
        q.get("repo").filter(|r| !r.is_empty()),
        q.get("tag").filter(|t| !t.is_empty()),
    ) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.to_string()),
        (None, _) => None,
    };
    let comment = q.get("comment").unwrap_or("").to_string();
    let author = q.get("author").unwrap_or("").to_string();
    let changes: Vec<String> = q.get_all("changes").into_iter().map(String::from).collect();
    // Docker pauses the container while committing unless told not to.
    let pause = q.get("pause").is_none_or(|_| q.flag("pause"));
    let body = http::read_body(call.take_body()?, 1 << 20).await?;
    let body = String::from_utf8_lossy(&body);
    if !matches!(body.trim(), "" | "null" | "{}") {
        return Err(ApiError::not_implemented(
            "berth does not support a configuration in the commit request yet; use --change",
        ));
    }
    let id = d
        .archive
        .commit(&container, tag, comment, author, changes, pause)
        .await?;
    Ok(http::json(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": id }),
    ))
}
