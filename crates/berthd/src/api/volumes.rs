//! `/volumes`: create, list, inspect, remove, prune.

use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::services::Daemon;
use crate::error::ApiResult;
use berth_api::VolumeCreateOptions;
use hyper::{Method, StatusCode};
use std::sync::Arc;

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    let vols = &d.volumes;
    let q = &call.query;
    Ok(Some(match (&call.method, segs) {
        (&Method::GET, [] | [""]) => http::json(StatusCode::OK, &vols.list(&q.filters()?)?),
        (&Method::POST, ["create"]) => {
            let req: VolumeCreateOptions = call.json().await?;
            http::json(StatusCode::CREATED, &vols.create_api(req)?)
        }
        (&Method::POST, ["prune"]) => http::json(StatusCode::OK, &vols.prune(&q.filters()?)?),
        (&Method::GET, [name]) => http::json(StatusCode::OK, &vols.inspect(name)?),
        (&Method::DELETE, [name]) => {
            vols.remove_api(name, q.flag("force"))?;
            http::empty(StatusCode::NO_CONTENT)
        }
        _ => return Ok(None),
    }))
}
