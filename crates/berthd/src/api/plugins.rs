//! `/plugins`: Docker's managed plugins. berth serves legacy plugins (a socket or
//! spec file, see daemon/plugins.rs) but installs none, so it answers as an engine
//! with no managed plugin installed: an empty list, "not found" for a name, and a
//! clear refusal for installing or creating one.

use crate::api::http::{self, Call, Resp};
use crate::error::{ApiError, ApiResult};
use hyper::{Method, StatusCode};

pub(super) fn route(call: &Call, segs: &[&str]) -> ApiResult<Option<Resp>> {
    if segs.first() != Some(&"plugins") {
        return Ok(None);
    }
    let refuse = || {
        Err(ApiError::not_implemented(
            "berth does not support managed plugins (docker plugin install/create) yet; legacy plugins on a socket or spec file in the plugin directories work",
        ))
    };
    match (&call.method, segs) {
        (&Method::GET, ["plugins"]) => {
            call.query.filters()?;
            Ok(Some(http::json(StatusCode::OK, &serde_json::json!([]))))
        }
        (_, ["plugins", "pull" | "create" | "privileges"]) => refuse(),
        (_, ["plugins", rest @ ..]) if !rest.is_empty() => {
            // A name may hold slashes (`vieux/sshfs:latest`): the action, if any,
            // is the last segment.
            let actions = ["json", "enable", "disable", "push", "set", "upgrade"];
            let name = match rest.split_last() {
                Some((last, before)) if !before.is_empty() && actions.contains(last) => {
                    before.join("/")
                }
                _ => rest.join("/"),
            };
            Err(ApiError::not_found(format!("plugin \"{name}\" not found")))
        }
        _ => Ok(None),
    }
}
