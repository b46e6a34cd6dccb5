//! `/networks`: list, inspect, create, remove, prune, connect, disconnect.

use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    let nets = &d.networks;
    let q = &call.query;
    Ok(Some(match (&call.method, segs) {
        (&Method::GET, [] | [""]) => http::json(StatusCode::OK, &nets.list(&q.filters()?)?),
        (&Method::POST, ["create"]) => {
            let body: Value = http::read_json(call.take_body()?).await?;
            let req = serde_json::from_value(body)
                .map_err(|e| ApiError::invalid(format!("invalid network configuration: {e}")))?;
            let (id, warning) = nets.create_api(req)?;
            http::json(
                StatusCode::CREATED,
                &json!({ "Id": id, "Warning": warning }),
            )
        }
        (&Method::POST, ["prune"]) => {
            let gone = nets.prune(&q.filters()?)?;
            http::json(StatusCode::OK, &json!({ "NetworksDeleted": gone }))
        }
        (&Method::GET, [id]) => http::json(StatusCode::OK, &nets.inspect(id)?),
        (&Method::DELETE, [id]) => {
            nets.remove_api(id)?;
            http::empty(StatusCode::NO_CONTENT)
        }
        // Connecting changes the container (its endpoints): the container service's.
        (&Method::POST, [id, "connect"]) => {
            let body: Value = http::read_json(call.take_body()?).await?;
            let container = container_of(&body)?;
            d.containers
                .connect(id, &container, body.get("EndpointConfig"))
                .await?;
            http::empty(StatusCode::OK)
        }
        (&Method::POST, [id, "disconnect"]) => {
            let body: Value = http::read_json(call.take_body()?).await?;
            let container = container_of(&body)?;
            let force = body.get("Force").and_then(Value::as_bool).unwrap_or(false);
            d.containers.disconnect(id, &container, force).await?;
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
