//! `/networks`: list, inspect, create, remove, prune, connect, disconnect.

use crate::api::http::Call;
use crate::api::http::{self, Resp};
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use berth_api::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkPruneResponse,
};
use hyper::{Method, StatusCode};
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
            let req: NetworkCreateRequest = call.json().await?;
            http::json(StatusCode::CREATED, &nets.create_api(req)?)
        }
        (&Method::POST, ["prune"]) => {
            let networks_deleted = nets.prune(&q.filters()?)?;
            http::json(StatusCode::OK, &NetworkPruneResponse { networks_deleted })
        }
        (&Method::GET, [id]) => http::json(StatusCode::OK, &nets.inspect(id)?),
        (&Method::DELETE, [id]) => {
            nets.remove_api(id)?;
            http::empty(StatusCode::NO_CONTENT)
        }
        // Connecting changes the container (its endpoints): the container service's.
        (&Method::POST, [id, "connect"]) => {
            let req: NetworkConnectRequest = call.json().await?;
            d.containers
                .connect(
                    id,
                    container_of(&req.container)?,
                    req.endpoint_config.as_ref(),
                )
                .await?;
            http::empty(StatusCode::OK)
        }
        (&Method::POST, [id, "disconnect"]) => {
            let req: NetworkDisconnectRequest = call.json().await?;
            d.containers
                .disconnect(id, container_of(&req.container)?, req.force)
                .await?;
            http::empty(StatusCode::OK)
        }
        _ => return Ok(None),
    }))
}

fn container_of(c: &str) -> ApiResult<&str> {
    if c.is_empty() {
        return Err(ApiError::invalid("no container specified (Container)"));
    }
    Ok(c)
}
