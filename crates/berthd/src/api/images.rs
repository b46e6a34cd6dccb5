//! `/images`: list, inspect, history, load, import, pull, push, tag, remove,
//! save, prune. Parses the request, calls the image service, renders.

use crate::api::http::Call;
use crate::api::http::{self, BodyReader, Resp};
use crate::daemon::image::pull::decode_auth;
use crate::daemon::image::query::apply_changes;
use crate::daemon::image::service::ImportRequest;
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use berth_api::JsonMessage;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::sync::Arc;
use tokio::sync::mpsc;

fn json_lines(msgs: &[JsonMessage]) -> Resp {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&serde_json::to_vec(m).expect("serialises"));
        out.push(b'\n');
    }
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Bytes::from(out));
    http::stream(StatusCode::OK, "application/json", rx)
}

/// `GET /distribution/{name}/json`: what the registry has under a name.
pub(super) async fn distribution(d: &Arc<Daemon>, call: &Call, name: &str) -> ApiResult<Resp> {
    let v = d.images.distribution(name, registry_auth(call)).await?;
    Ok(http::json(StatusCode::OK, &v))
}

fn registry_auth(call: &Call) -> Option<berth_registry::auth::Credentials> {
    decode_auth(
        call.headers
            .get("x-registry-auth")
            .and_then(|v| v.to_str().ok()),
    )
}

/// `rest` is the path after `/images`; image names may contain slashes.
pub(super) async fn route(d: &Arc<Daemon>, call: &mut Call, rest: &str) -> ApiResult<Option<Resp>> {
    let images = &d.images;
    let q = &call.query;
    let method = call.method.clone();
    Ok(Some(match (&method, rest) {
        (&Method::GET, "/json") => {
            http::json(StatusCode::OK, &images.list(q.flag("all"), &q.filters()?)?)
        }
        (&Method::POST, "/prune") => http::json(StatusCode::OK, &images.prune(&q.filters()?)?),
        (&Method::POST, "/load") => {
            let lines = images.load(BodyReader::new(call.take_body()?)).await?;
            let msgs: Vec<JsonMessage> = lines
                .into_iter()
                .map(|l| JsonMessage {
                    stream: Some(format!("{l}\n")),
                    ..Default::default()
                })
                .collect();
            json_lines(&msgs)
        }
        (&Method::POST, "/create") => {
            let src = q.get("fromSrc").unwrap_or("");
            if src.is_empty() {
                let image = q.get("fromImage").unwrap_or("");
                if image.is_empty() {
                    return Err(ApiError::invalid("fromImage or fromSrc is required"));
                }
                let tag = q.get("tag").unwrap_or("");
                let rx = images
                    .pull(image, tag, q.get("platform"), registry_auth(call))
                    .await?;
                return Ok(Some(http::stream(StatusCode::OK, "application/json", rx)));
            }
            if src != "-" {
                return Err(ApiError::not_implemented(
                    "berth imports only from the request body (fromSrc=-), not from a URL",
                ));
            }
            let config = apply_changes(Default::default(), &q.get_all("changes"))?;
            let tag = match (
                q.get("repo").filter(|r| !r.is_empty()),
                q.get("tag").filter(|t| !t.is_empty()),
            ) {
                (Some(r), Some(t)) => Some(format!("{r}:{t}")),
                (Some(r), None) => Some(r.to_string()),
                (None, _) => None,
            };
            let req = ImportRequest {
                config,
                tag,
                message: q.get("message").unwrap_or("").to_string(),
            };
            let id = images
                .import(BodyReader::new(call.take_body()?), req)
                .await?;
            json_lines(&[JsonMessage {
                status: Some(id),
                ..Default::default()
            }])
        }
        (&Method::GET, "/get") => {
            let names: Vec<String> = q.get_all("names").into_iter().map(String::from).collect();
            http::stream(StatusCode::OK, "application/x-tar", images.save(names)?)
        }
        (&Method::GET, r) if r.ends_with("/get") => http::stream(
            StatusCode::OK,
            "application/x-tar",
            images.save(vec![name_of(r, "/get")?])?,
        ),
        (&Method::GET, r) if r.ends_with("/json") => {
            http::json(StatusCode::OK, &images.inspect(&name_of(r, "/json")?)?)
        }
        (&Method::GET, r) if r.ends_with("/history") => {
            http::json(StatusCode::OK, &images.history(&name_of(r, "/history")?)?)
        }
        (&Method::POST, r) if r.ends_with("/push") => {
            let name = name_of(r, "/push")?;
            let tag = q.get("tag").unwrap_or("");
            let rx = images.push(&name, tag, registry_auth(call))?;
            http::stream(StatusCode::OK, "application/json", rx)
        }
        (&Method::POST, r) if r.ends_with("/tag") => {
            let repo = q
                .get("repo")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| ApiError::invalid("repository name must be given"))?;
            let target = match q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo.to_string(),
            };
            images.tag(&name_of(r, "/tag")?, &target)?;
            http::empty(StatusCode::CREATED)
        }
        (&Method::DELETE, r) => {
            let items = images.remove(&name_of(r, "")?, q.flag("force"))?;
            http::json(StatusCode::OK, &items)
        }
        _ => return Ok(None),
    }))
}

fn name_of(rest: &str, suffix: &str) -> ApiResult<String> {
    let name = rest
        .strip_suffix(suffix)
        .unwrap_or(rest)
        .trim_start_matches('/');
    if name.is_empty() {
        return Err(ApiError::invalid("image name must not be empty"));
    }
    Ok(name.to_string())
}
