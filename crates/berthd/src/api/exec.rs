use crate::api::containers::Session;
use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::container::detach;
use crate::daemon::container::start::AttachSource;
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use berth_api::ExecStartConfig;
use berth_runtime::shimproto::{WANT_STDERR, WANT_STDIN, WANT_STDOUT};
use hyper::{Method, StatusCode};
use std::sync::Arc;

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    let cs = &d.containers;
    Ok(Some(match (&call.method, segs) {
        (&Method::GET, [id, "json"]) => http::json(StatusCode::OK, &cs.exec_inspect(id)?),
        (&Method::POST, [id, "resize"]) => {
            let dim = |k: &str| -> ApiResult<u16> {
                let v = call.query.int(k)?.unwrap_or(0);
                u16::try_from(v)
                    .map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v}")))
            };
            let (h, w) = (dim("h")?, dim("w")?);
            cs.exec_resize(id, h, w).await?;
            http::empty(StatusCode::OK)
        }
        (&Method::POST, [id, "start"]) => start(d, call, id).await?,
        _ => return Ok(None),
    }))
}

/// `POST /exec/{id}/start`: detached, or hijacked like an attach.
async fn start(d: &Arc<Daemon>, call: &mut Call, id: &str) -> ApiResult<Resp> {
    let cs = &d.containers;
    let exec = cs.exec_get(id)?;
    let body = http::read_body(call.take_body()?, 1 << 20).await?;
    let opts: ExecStartConfig = if body.is_empty() {
        ExecStartConfig::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON in request body: {e}")))?
    };
    if exec.state().started {
        return Err(ApiError::conflict(format!(
            "Exec {id} has already been started"
        )));
    }
    if opts.detach {
        cs.exec_start(&exec, None).await?;
        return Ok(http::empty(StatusCode::OK));
    }
    let cfg = &exec.config;
    let keys = if cfg.detach_keys.is_empty() {
        detach::DEFAULT.to_vec()
    } else {
        detach::parse(&cfg.detach_keys)?
    };
    let mut want = 0;
    if cfg.attach_stdout {
        want |= WANT_STDOUT;
    }
    if cfg.attach_stderr {
        want |= WANT_STDERR;
    }
    if cfg.attach_stdin && call.upgrade.is_some() {
        want |= WANT_STDIN;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let session = Session {
        source: (want != 0).then_some(AttachSource::Pending(rx)),
        want,
        keys,
        // An exec's stdin ends with its client's.
        stdin_once: true,
        exec: Some(exec.clone()),
        tty: cfg.tty,
    };
    // The process starts once the client has its answer, with the stream already
    // connected to it.
    let cs2 = cs.clone();
    let attach = (want != 0).then_some((want, tx));
    tokio::spawn(async move {
        let _ = cs2.exec_start(&exec, attach).await;
    });
    Ok(session.respond(call.upgrade.take(), None))
}
