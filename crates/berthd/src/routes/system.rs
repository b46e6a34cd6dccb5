use super::{Call, Daemon};
use crate::error::ApiResult;
use crate::http::{self, Resp};
use hyper::{Method, StatusCode};
use std::sync::Arc;

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    Ok(Some(match (&call.method, segs) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => {
            let mut r = if call.method == Method::HEAD {
                http::empty(StatusCode::OK)
            } else {
                http::text(StatusCode::OK, "OK")
            };
            let h = r.headers_mut();
            h.insert(
                "Cache-Control",
                "no-cache, no-store, must-revalidate"
                    .parse()
                    .expect("valid"),
            );
            h.insert("Pragma", "no-cache".parse().expect("valid"));
            r
        }
        (&Method::GET, ["version"]) => http::json(StatusCode::OK, &d.system.version()),
        (&Method::GET, ["info"]) => http::json(StatusCode::OK, &d.system.info()),
        _ => return Ok(None),
    }))
}
