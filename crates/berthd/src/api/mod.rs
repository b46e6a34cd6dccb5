//! The Engine API router: version negotiation, then one module per resource.
//! Handlers parse and validate, call a service, and render; nothing below them
//! sees HTTP.

mod attach;
mod authz;
mod build;
mod containers;
pub mod errors;
mod exec;
mod grpc;
mod head;
pub mod http;
mod images;
pub mod metrics;
mod networks;
mod plugins;
pub mod server;
mod swarm;
mod system;
mod volumes;
mod websocket;

use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use berth_api::{parse_version, API_VERSION, MIN_API_VERSION};
use http::Call;
use http::Resp;
use hyper::body::Incoming;
use hyper::{Method, Request};
use std::sync::Arc;

/// Splits a `/v1.44/...` prefix off, checking the version against what berth speaks.
fn split_version(path: &str) -> ApiResult<(Option<String>, String)> {
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if let Some(v) = parse_version(ver) {
            if v > parse_version(API_VERSION).expect("valid") {
                return Err(ApiError::invalid(format!(
                    "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                )));
            }
            if v < parse_version(MIN_API_VERSION).expect("valid") {
                return Err(ApiError::invalid(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                )));
            }
            return Ok((Some(ver.to_string()), tail.to_string()));
        }
    }
    Ok((None, path.to_string()))
}

pub async fn handle(d: Arc<Daemon>, mut req: Request<Incoming>) -> Resp {
    let upgrade = if req.headers().contains_key(hyper::header::UPGRADE) {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let started = std::time::Instant::now();
    let mut resp = match split_version(&raw_path) {
        Err(e) => http::error(&e),
        Ok((version, path)) => {
            let path = percent_decode(&path);
            let mut call = Call {
                method: parts.method.clone(),
                path,
                query: http::Query::parse(parts.uri.query()),
                body: Some(http::ReqBody::Stream(body)),
                upgrade,
                headers: parts.headers.clone(),
                version,
            };
            let uri = parts
                .uri
                .path_and_query()
                .map_or(raw_path.clone(), |p| p.as_str().to_string());
            let seen = if authz::plugins(&d).is_empty() {
                Ok(None)
            } else {
                authz::request(&d, &mut call, &uri).await.map(Some)
            };
            match seen {
                Err(refused) => refused,
                Ok(seen) => {
                    let result = route(&d, &mut call).await;
                    if result.is_err() {
                        // A client still sending its body (a tar) would see a broken
                        // pipe instead of the error: read the rest first, as Go's
                        // server does.
                        if let Some(b) = call.body.take() {
                            http::drain(b, 64 << 20).await;
                        }
                    }
                    let r = match result {
                        Ok(r) => r,
                        Err(e) => {
                            if e.kind == berth_api::ErrorKind::Internal {
                                // The typed cause, with its fields, goes to the log.
                                tracing::error!(method = %parts.method, path = %raw_path, error = %e.message, cause = ?e.cause(), "request failed");
                            } else {
                                tracing::debug!(method = %parts.method, path = %raw_path, error = %e.message, "request refused");
                            }
                            http::error(&e)
                        }
                    };
                    match seen {
                        Some(req) => authz::response(&d, req, r).await,
                        None => r,
                    }
                }
            }
        }
    };
    tracing::debug!(method = %parts.method, path = %raw_path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    let h = resp.headers_mut();
    h.insert("Api-Version", API_VERSION.parse().expect("valid header"));
    h.insert(
        "Docker-Experimental",
        "false".parse().expect("valid header"),
    );
    h.insert("Ostype", "linux".parse().expect("valid header"));
    h.insert(
        "Server",
        format!("berth/{} (linux)", crate::daemon::system::VERSION)
            .parse()
            .expect("valid header"),
    );
    resp
}

fn percent_decode(p: &str) -> String {
    percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .into_owned()
}

async fn route(d: &Arc<Daemon>, call: &mut Call) -> ApiResult<Resp> {
    let path = call.path.clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(r) = system::route(d, call, &segs).await? {
        return Ok(r);
    }
    if call.method == Method::POST && segs.as_slice() == ["commit"] {
        return containers::commit(d, call).await;
    }
    if segs.first() == Some(&"containers") {
        if let Some(r) = containers::route(d, call, &segs[1..]).await? {
            return Ok(r);
        }
    }
    if segs.first() == Some(&"exec") {
        if let Some(r) = exec::route(d, call, &segs[1..]).await? {
            return Ok(r);
        }
    }
    if segs.first() == Some(&"networks") {
        if let Some(r) = networks::route(d, call, &segs[1..]).await? {
            return Ok(r);
        }
    }
    if segs.first() == Some(&"volumes") {
        if let Some(r) = volumes::route(d, call, &segs[1..]).await? {
            return Ok(r);
        }
    }
    if call.method == Method::POST && segs.as_slice() == ["session"] {
        return build::session(d, call);
    }
    if call.method == Method::GET
        && segs.first() == Some(&"distribution")
        && segs.last() == Some(&"json")
        && segs.len() > 2
    {
        let name = segs[1..segs.len() - 1].join("/");
        return images::distribution(d, call, &name).await;
    }
    if call.method == Method::POST && segs.as_slice() == ["grpc"] {
        return grpc::upgrade(d, call);
    }
    if segs.first() == Some(&"build") {
        if let Some(r) = build::route(d, call, &segs[1..]).await? {
            return Ok(r);
        }
    }
    if let Some(r) = plugins::route(d, call, &segs).await? {
        return Ok(r);
    }
    if let Some(r) = swarm::route(call, &segs)? {
        return Ok(r);
    }
    if segs.first() == Some(&"images") {
        if let Some(r) = images::route(d, call, &path["/images".len()..]).await? {
            return Ok(r);
        }
    }
    Err(ApiError::not_found("page not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes() {
        assert_eq!(
            split_version("/v1.44/containers/json").unwrap(),
            (Some("1.44".into()), "/containers/json".into())
        );
        assert_eq!(split_version("/_ping").unwrap(), (None, "/_ping".into()));
        let e = split_version("/v1.99/info").unwrap_err();
        assert_eq!(
            e.message,
            "client version 1.99 is too new. Maximum supported API version is 1.51"
        );
        let e = split_version("/v1.12/info").unwrap_err();
        assert!(e.message.starts_with("client version 1.12 is too old."));
    }

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(
            percent_decode("/images/me%2Fapp:v1/json"),
            "/images/me/app:v1/json"
        );
        assert_eq!(
            percent_decode("/containers/a+b/json"),
            "/containers/a+b/json"
        );
    }
}
