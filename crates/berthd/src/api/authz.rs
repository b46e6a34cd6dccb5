//! Docker's authorization plugins (`--authorization-plugin`): each is asked about
//! every request before it is served (`AuthZPlugin.AuthZReq`) and about its
//! answer after (`AuthZPlugin.AuthZRes`), in order; the first to refuse wins, and
//! the client gets Docker's 403 "authorization denied by plugin NAME: MSG". A
//! request's JSON body under 1 MiB is read first so that the plugin can see it
//! (a container's HostConfig, say), then served from memory.

use crate::api::http::{self, Body, Call, ReqBody, Resp};
use crate::daemon::services::Daemon;
use crate::error::ApiError;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;

/// Docker's limit on the bodies a plugin is shown.
const MAX_BODY: u64 = 1 << 20;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn headers(h: &hyper::HeaderMap) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in h {
        if let Ok(v) = v.to_str() {
            m.insert(k.as_str().to_string(), json!(v));
        }
    }
    Value::Object(m)
}

fn is_json(h: &hyper::HeaderMap) -> bool {
    h.get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.split(';').next().unwrap_or("").trim() == "application/json")
}

/// The authorization plugins in force (SIGHUP may change them).
pub fn plugins(d: &Daemon) -> Vec<String> {
    d.authz.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Calls one plugin off the async workers (the protocol client blocks).
async fn ask(
    d: &Arc<Daemon>,
    name: &str,
    method: &'static str,
    body: Value,
) -> Result<Value, Resp> {
    let (plugins, n) = (d.plugins.clone(), name.to_string());
    let r = tokio::task::spawn_blocking(move || plugins.authz_call(&n, method, &body)).await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(http::error(&ApiError::internal(format!(
            "plugin {name} failed with error: AuthZPlugin.{method}: {}",
            e.message
        )))),
        Err(e) => Err(http::error(&ApiError::internal(format!(
            "plugin {name}: {e}"
        )))),
    }
}

fn denied(name: &str, v: &Value) -> Resp {
    http::error(&ApiError::new(
        berth_api::ErrorKind::Forbidden,
        format!(
            "authorization denied by plugin {name}: {}",
            v["Msg"].as_str().unwrap_or("")
        ),
    ))
}

/// Asks every plugin about `call`; the request as they saw it comes back for
/// [`response`], or the answer to give instead when one refused.
pub async fn request(d: &Arc<Daemon>, call: &mut Call, uri: &str) -> Result<Value, Resp> {
    let mut req = json!({
        "User": "",
        "UserAuthNMethod": "",
        "RequestMethod": call.method.as_str(),
        "RequestURI": uri,
        "RequestHeaders": headers(&call.headers),
    });
    let small = call
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0 && n <= MAX_BODY);
    if small && is_json(&call.headers) {
        if let Some(body) = call.body.take() {
            let bytes = http::read_body(body, MAX_BODY as usize)
                .await
                .map_err(|e| http::error(&e))?;
            req["RequestBody"] = json!(b64(&bytes));
            call.body = Some(ReqBody::Full(Some(bytes)));
        }
    }
    for name in plugins(d) {
        let v = ask(d, &name, "AuthZReq", req.clone()).await?;
        if v["Allow"].as_bool() != Some(true) {
            return Err(denied(&name, &v));
        }
    }
    Ok(req)
}

/// Asks every plugin about the answer to `req`; Docker's 403 replaces it when one
/// refuses.
pub async fn response(d: &Arc<Daemon>, mut req: Value, resp: Resp) -> Resp {
    req["ResponseStatusCode"] = json!(resp.status().as_u16());
    req["ResponseHeaders"] = headers(resp.headers());
    if let Body::Full(Some(b)) = resp.body() {
        if is_json(resp.headers()) && (b.len() as u64) <= MAX_BODY {
            req["ResponseBody"] = json!(b64(b));
        }
    }
    for name in plugins(d) {
        match ask(d, &name, "AuthZRes", req.clone()).await {
            Ok(v) if v["Allow"].as_bool() == Some(true) => {}
            Ok(v) => return denied(&name, &v),
            Err(r) => return r,
        }
    }
    resp
}
