//! `/plugins`: Docker's managed plugins (daemon/plugins/managed). Parses the
//! request, calls the plugin manager, renders; the progress of install, upgrade
//! and push streams as Docker's JSON messages.

use crate::api::http::{self, BodyReader, Call, Resp};
use crate::daemon::image::pull::decode_auth;
use crate::daemon::plugins::managed::config::Privilege;
use crate::daemon::plugins::managed::familiar;
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use hyper::{Method, StatusCode};
use std::sync::Arc;

fn registry_auth(call: &Call) -> Option<berth_registry::auth::Credentials> {
    decode_auth(
        call.headers
            .get("x-registry-auth")
            .and_then(|v| v.to_str().ok()),
    )
}

/// The privileges a client accepted (the request's JSON array; none when empty).
async fn accepted(call: &mut Call) -> ApiResult<Vec<Privilege>> {
    let b = http::read_body(call.take_body()?, 1 << 20).await?;
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let v: Option<Vec<Privilege>> = serde_json::from_slice(&b)
        .map_err(|e| ApiError::invalid(format!("invalid privileges in request body: {e}")))?;
    Ok(v.unwrap_or_default())
}

fn remote(call: &Call) -> ApiResult<String> {
    call.query
        .get("remote")
        .filter(|r| !r.is_empty())
        .map(String::from)
        .ok_or_else(|| ApiError::invalid("invalid reference format: remote is empty"))
}

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    if segs.first() != Some(&"plugins") {
        return Ok(None);
    }
    let m = &d.plugin_manager;
    let method = call.method.clone();
    Ok(Some(match (&method, &segs[1..]) {
        (&Method::GET, []) => http::json(StatusCode::OK, &m.list(&call.query.filters()?)?),
        (&Method::GET, ["privileges"]) => {
            let privileges = m.privileges(&remote(call)?, registry_auth(call)).await?;
            http::json(StatusCode::OK, &privileges)
        }
        (&Method::POST, ["pull"]) => {
            let remote = remote(call)?;
            let name = call.query.get("name").unwrap_or("").to_string();
            let creds = registry_auth(call);
            let privileges = accepted(call).await?;
            let (name, rx) = m.pull(&remote, &name, creds, privileges).await?;
            let mut r = http::stream(StatusCode::OK, "application/json", rx);
            if let Ok(v) = hyper::header::HeaderValue::from_str(&name) {
                r.headers_mut().insert("Docker-Plugin-Name", v);
            }
            r
        }
        (&Method::POST, ["create"]) => {
            let name = call.query.get("name").unwrap_or("").to_string();
            if name.is_empty() {
                return Err(ApiError::invalid("a plugin name is required"));
            }
            m.create(&name, BodyReader::new(call.take_body()?)).await?;
            http::empty(StatusCode::NO_CONTENT)
        }
        (_, [rest @ .., action]) if !rest.is_empty() => {
            // A name may hold slashes (`vieux/sshfs:latest`).
            let name = rest.join("/");
            match (&method, *action) {
                (&Method::GET, "json") => http::json(StatusCode::OK, &m.inspect(&name)?),
                (&Method::POST, "enable") => {
                    if let Some(t) = call.query.get("timeout").filter(|t| !t.is_empty()) {
                        t.parse::<i64>().map_err(|_| {
                            ApiError::invalid(format!(
                                "strconv.Atoi: parsing {t:?}: invalid syntax"
                            ))
                        })?;
                    }
                    m.enable(&name).await?;
                    http::empty(StatusCode::OK)
                }
                (&Method::POST, "disable") => {
                    let plugin = m.inspect(&name)?;
                    m.disable(&name, call.query.flag("force")).await?;
                    // A disabled authorization plugin leaves the chain, as in moby.
                    if plugin.config.provides("authz") {
                        d.authz
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .retain(|n| familiar(n).ok().as_ref() != Some(&plugin.name));
                    }
                    http::empty(StatusCode::OK)
                }
                (&Method::POST, "set") => {
                    let args: Vec<String> = call.json().await?;
                    m.set(&name, &args).await?;
                    http::empty(StatusCode::NO_CONTENT)
                }
                (&Method::POST, "push") => {
                    let rx = m.push(&name, registry_auth(call))?;
                    http::stream(StatusCode::OK, "application/json", rx)
                }
                (&Method::POST, "upgrade") => {
                    let remote = remote(call)?;
                    let creds = registry_auth(call);
                    let privileges = accepted(call).await?;
                    let rx = m.upgrade(&name, &remote, creds, privileges).await?;
                    http::stream(StatusCode::OK, "application/json", rx)
                }
                (&Method::DELETE, _) => {
                    let name = segs[1..].join("/");
                    m.remove(&name, call.query.flag("force")).await?;
                    http::empty(StatusCode::OK)
                }
                _ => return Ok(None),
            }
        }
        (&Method::DELETE, [name]) => {
            m.remove(name, call.query.flag("force")).await?;
            http::empty(StatusCode::OK)
        }
        _ => return Ok(None),
    }))
}
