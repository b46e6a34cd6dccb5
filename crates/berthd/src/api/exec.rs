use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use berth_api::ExecStartConfig;
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
    let body = http::read_body(call.take_body()?, 1 << 20).await?;
    let opts: ExecStartConfig = if body.is_empty() {
        ExecStartConfig::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON in request body: {e}")))?
    };
    let duplex = call.upgrade.is_some();
    Ok(
        match d.containers.exec_start_session(id, opts, duplex).await? {
            None => http::empty(StatusCode::OK),
            Some(session) => crate::api::attach::respond(session, call.upgrade.take()),
        },
    )
}
