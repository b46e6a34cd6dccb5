//! Swarm mode's endpoints, answered as a Docker engine that is not in a swarm
//! answers them: berth joins no cluster of its own (beyond one machine it plugs
//! into Kubernetes), and clients rely on these exact answers (a forced `swarm
//! leave` counts as done only on "not part of a swarm").

use crate::api::http::{Call, Resp};
use crate::error::{ApiError, ApiResult};
use berth_api::ErrorKind;
use hyper::Method;

const NOT_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
const NOT_IN_SWARM: &str = "This node is not part of a swarm";

pub(super) fn route(call: &Call, segs: &[&str]) -> ApiResult<Option<Resp>> {
    let Some(first) = segs.first() else {
        return Ok(None);
    };
    if !["swarm", "services", "nodes", "tasks", "secrets", "configs"].contains(first) {
        return Ok(None);
    }
    let unavailable = |m: &str| Err(ApiError::new(ErrorKind::Unavailable, m));
    match (&call.method, segs) {
        (&Method::POST, ["swarm", "leave"]) => unavailable(NOT_IN_SWARM),
        (&Method::POST, ["swarm", "init" | "join"]) => Err(ApiError::not_implemented(
            "berth does not run swarm mode: beyond one machine it plugs into Kubernetes (CRI)",
        )),
        _ => unavailable(NOT_MANAGER),
    }
}
