//! `/containers`: create, list, inspect, start, stop, kill, wait, remove, logs,
//! attach, pause, cp, export, diff, update, rename, stats, top, prune, exec,
//! resize, and `/commit`.

use crate::api::attach;
use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::container::attach::AttachRequest;
use crate::daemon::container::logs::LogOptions;
use crate::daemon::container::{Changed, WaitCondition};
use crate::daemon::services::Daemon;
use crate::daemon::time::parse_unix_nanos;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::sync::Arc;
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
            let platform = q.get("platform").map(String::from);
            let req = call.json().await?;
            let r = cs.create_for(name.as_deref(), req, platform.as_deref())?;
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
        // `docker rm --link /parent/alias`: the link's name holds a slash.
        (&Method::DELETE, rest) if q.flag("link") => {
            cs.remove_link(&rest.join("/"))?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::DELETE, [id]) => {
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
            http::stream(StatusCode::OK, attach::content_type(tty), rx)
        }
        (&Method::POST, [id, "attach"]) => {
            let req = AttachRequest {
                stdin: q.flag("stdin"),
                stdout: q.flag("stdout"),
                stderr: q.flag("stderr"),
                logs: q.flag("logs"),
                stream: q.flag("stream"),
                detach_keys: q.get("detachKeys").map(String::from),
                duplex: call.upgrade.is_some(),
            };
            let session = cs.attach(id, req).await?;
            attach::respond(session, call.upgrade.take())
        }
        (&Method::GET, [id, "attach", "ws"]) => {
            let req = AttachRequest {
                stdin: q.flag("stdin"),
                stdout: q.flag("stdout"),
                stderr: q.flag("stderr"),
                logs: q.flag("logs"),
                stream: q.flag("stream"),
                detach_keys: q.get("detachKeys").map(String::from),
                duplex: true,
            };
            let session = cs.attach(id, req).await?;
            crate::api::websocket::respond(session, call)?
        }
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
            let req: berth_api::ContainerUpdateRequest = call.json().await?;
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
            let config = call.json().await?;
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
