//! `/volumes`: create, list, inspect, remove, prune.

use super::{Call, Daemon};
use crate::error::ApiResult;
use crate::http::{self, Resp};
use hyper::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    let cs = &d.containers;
    let q = &call.query;
    Ok(Some(match (&call.method, segs) {
        (&Method::GET, [] | [""]) => http::json(StatusCode::OK, &cs.list_volumes(&q.filters()?)?),
        (&Method::POST, ["create"]) => {
            let body: Value = http::read_json(call.take_body()?).await?;
            http::json(StatusCode::CREATED, &cs.create_volume(&body)?)
        }
        (&Method::POST, ["prune"]) => http::json(StatusCode::OK, &cs.prune_volumes(&q.filters()?)?),
        (&Method::GET, [name]) => http::json(StatusCode::OK, &cs.inspect_volume(name)?),
        (&Method::DELETE, [name]) => {
            cs.remove_volume(name, q.flag("force"))?;
            http::empty(StatusCode::NO_CONTENT)
        }
        _ => return Ok(None),
    }))
}
