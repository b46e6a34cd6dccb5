//! `/networks`: list, inspect, create, remove, prune, connect, disconnect.

use super::{Call, Daemon};
use crate::error::{ApiError, ApiResult};
use crate::http::{self, Resp};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    let cs = &d.containers;
    let q = &call.query;
    Ok(Some(match (&call.method, segs) {
        (&Method::GET, [] | [""]) => http::json(StatusCode::OK, &cs.list_networks(&q.filters()?)?),
        (&Method::POST, ["create"]) => {
            let body: Value = http::read_json(call.take_body()?).await?;
            let req = serde_json::from_value(body)
                .map_err(|e| ApiError::invalid(format!("invalid network configuration: {e}")))?;
            let (id, warning) = cs.create_network(req)?;
            http::json(
                StatusCode::CREATED,
                &json!({ "Id": id, "Warning": warning }),
            )
        }
        (&Method::POST, ["prune"]) => {
            let gone = cs.prune_networks(&q.filters()?)?;
            http::json(StatusCode::OK, &json!({ "NetworksDeleted": gone }))
        }
        (&Method::GET, [id]) => http::json(StatusCode::OK, &cs.inspect_network(id)?),
        (&Method::DELETE, [id]) => {
            cs.remove_network(id)?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, [id, "connect"]) => {
            let body: Value = http::read_json(call.take_body()?).await?;
            let container = container_of(&body)?;
            cs.connect(id, &container, body.get("EndpointConfig"))
                .await?;
            http::empty(StatusCode::OK)
        }
        (&Method::POST, [id, "disconnect"]) => {
            let body: Value = http::read_json(call.take_body()?).await?;
            let container = container_of(&body)?;
            let force = body.get("Force").and_then(Value::as_bool).unwrap_or(false);
            cs.disconnect(id, &container, force).await?;
            http::empty(StatusCode::OK)
        }
        _ => return Ok(None),
    }))
}

fn container_of(body: &Value) -> ApiResult<String> {
    body.get("Container")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .ok_or_else(|| ApiError::invalid("no container specified (Container)"))
}
