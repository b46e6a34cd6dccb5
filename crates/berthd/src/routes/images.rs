use super::{Call, Daemon};
use crate::engine::images;
use crate::error::{ApiError, ApiResult};
use crate::http::{self, BodyReader, ChannelWriter, Resp};
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

/// `rest` is the path after `/images`; image names may contain slashes.
pub(super) async fn route(d: &Arc<Daemon>, call: &mut Call, rest: &str) -> ApiResult<Option<Resp>> {
    let store = &d.store;
    let q = &call.query;
    let method = call.method.clone();
    Ok(Some(match (&method, rest) {
        (&Method::GET, "/json") => {
            let list = images::list(store, &d.containers, q.flag("all"), &q.filters()?)?;
            http::json(StatusCode::OK, &list)
        }
        (&Method::POST, "/prune") => http::json(
            StatusCode::OK,
            &images::prune(store, &d.containers, &q.filters()?)?,
        ),
        (&Method::POST, "/load") => {
            let reader = BodyReader::new(call.take_body()?);
            let s = store.clone();
            let lines = tokio::task::spawn_blocking(move || s.load(reader))
                .await
                .map_err(|e| ApiError::internal(format!("load task: {e}")))??;
            for l in &lines {
                if let Some(name) = l
                    .strip_prefix("Loaded image: ")
                    .or_else(|| l.strip_prefix("Loaded image ID: "))
                {
                    image_event(d, "load", name);
                }
            }
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
                let image = q.get("fromImage").unwrap_or("").to_string();
                if image.is_empty() {
                    return Err(ApiError::invalid("fromImage or fromSrc is required"));
                }
                let tag = q.get("tag").unwrap_or("").to_string();
                let creds = crate::engine::pull::decode_auth(
                    call.headers
                        .get("x-registry-auth")
                        .and_then(|v| v.to_str().ok()),
                );
                let plan = d
                    .puller
                    .plan(&image, &tag, q.get("platform"), creds)
                    .await?;
                let (tx, rx) = mpsc::channel(64);
                let puller = d.puller.clone();
                let daemon = d.clone();
                tokio::spawn(async move {
                    match puller.run(plan, &tx).await {
                        Ok(id) => image_event(&daemon, "pull", &id),
                        Err(e) => {
                            let v = serde_json::json!({ "errorDetail": { "message": e.message }, "error": e.message });
                            let mut line = serde_json::to_vec(&v).expect("serialises");
                            line.push(b'\n');
                            let _ = tx.send(Bytes::from(line)).await;
                        }
                    }
                });
                return Ok(Some(http::stream(StatusCode::OK, "application/json", rx)));
            }
            if src != "-" {
                return Err(ApiError::not_implemented(
                    "berth imports only from the request body (fromSrc=-), not from a URL",
                ));
            }
            let config = images::apply_changes(Default::default(), &q.get_all("changes"))?;
            let tag = match (
                q.get("repo").filter(|r| !r.is_empty()),
                q.get("tag").filter(|t| !t.is_empty()),
            ) {
                (Some(r), Some(t)) => Some(format!("{r}:{t}")),
                (Some(r), None) => Some(r.to_string()),
                (None, _) => None,
            };
            let message = q.get("message").unwrap_or("").to_string();
            let reader = BodyReader::new(call.take_body()?);
            let s = store.clone();
            let id = tokio::task::spawn_blocking(move || {
                s.import(
                    reader,
                    config,
                    tag.as_deref(),
                    &message,
                    &crate::engine::now_rfc3339(),
                )
            })
            .await
            .map_err(|e| ApiError::internal(format!("import task: {e}")))??;
            json_lines(&[JsonMessage {
                status: Some(id),
                ..Default::default()
            }])
        }
        (&Method::GET, "/get") => {
            let names: Vec<String> = q.get_all("names").into_iter().map(String::from).collect();
            save(d, names)?
        }
        (&Method::GET, r) if r.ends_with("/get") => save(d, vec![name_of(r, "/get")?])?,
        (&Method::GET, r) if r.ends_with("/json") => http::json(
            StatusCode::OK,
            &images::inspect(store, &name_of(r, "/json")?)?,
        ),
        (&Method::GET, r) if r.ends_with("/history") => http::json(
            StatusCode::OK,
            &images::history(store, &name_of(r, "/history")?)?,
        ),
        (&Method::POST, r) if r.ends_with("/push") => {
            let name = name_of(r, "/push")?;
            let tag = q.get("tag").unwrap_or("").to_string();
            let creds = crate::engine::pull::decode_auth(
                call.headers
                    .get("x-registry-auth")
                    .and_then(|v| v.to_str().ok()),
            );
            // The image must exist before the stream starts: a 404 otherwise.
            let local = match berth_image::reference::Reference::parse(&name) {
                Ok(r) if tag.is_empty() => r.tagged().unwrap_or(name.clone()),
                Ok(r) => format!("{}:{tag}", r.repo),
                Err(_) => name.clone(),
            };
            if store.resolve(&local).is_err() {
                return Err(ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {}",
                    name.split(':').next().unwrap_or(&name)
                )));
            }
            let (tx, rx) = mpsc::channel(64);
            let puller = d.puller.clone();
            let daemon = d.clone();
            tokio::spawn(async move {
                match puller.push(&name, &tag, creds, &tx).await {
                    Ok(_) => image_event(&daemon, "push", &local),
                    Err(e) => {
                        let v = serde_json::json!({ "errorDetail": { "message": e.message }, "error": e.message });
                        let mut line = serde_json::to_vec(&v).expect("serialises");
                        line.push(b'\n');
                        let _ = tx.send(Bytes::from(line)).await;
                    }
                }
            });
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
            let source = name_of(r, "/tag")?;
            store.tag(&source, &target)?;
            let familiar = berth_image::Reference::parse(&target)
                .ok()
                .and_then(|r| r.tagged())
                .unwrap_or(target);
            image_event(d, "tag", &familiar);
            http::empty(StatusCode::CREATED)
        }
        (&Method::DELETE, r) => {
            let name = name_of(r, "")?;
            let cs = d.containers.clone();
            let items = store.remove(&name, q.flag("force"), &|id| cs.is_running(id))?;
            for u in items.iter().filter_map(|i| i.untagged.as_ref()) {
                image_event(d, "untag", u);
            }
            // The first deletion is the image; the rest are its layers.
            if let Some(del) = items.iter().find_map(|i| i.deleted.as_ref()) {
                image_event(d, "delete", del);
            }
            http::json(StatusCode::OK, &items)
        }
        _ => return Ok(None),
    }))
}

/// An image event: Actor.ID is the image's ID when it still resolves, and `name` the
/// reference the user gave.
fn image_event(d: &Arc<Daemon>, action: &str, name: &str) {
    let id = d
        .store
        .resolve(name)
        .map(|i| i.id)
        .unwrap_or_else(|_| name.to_string());
    let mut attrs = serde_json::Map::new();
    attrs.insert("name".into(), name.into());
    d.containers.events.emit("image", action, &id, attrs);
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

fn save(d: &Arc<Daemon>, names: Vec<String>) -> ApiResult<Resp> {
    if names.is_empty() {
        return Err(ApiError::invalid("no image names given"));
    }
    // Resolve first, so that a missing image is a 404 and not a broken tar.
    for n in &names {
        d.store.resolve(n)?;
    }
    for n in &names {
        image_event(d, "save", n);
    }
    let (tx, rx) = mpsc::channel(8);
    let s = d.store.clone();
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter::new(tx);
        if let Err(e) = s.save(&names, w) {
            tracing::error!(error = %crate::error::chain(&e), "save");
        }
    });
    Ok(http::stream(StatusCode::OK, "application/x-tar", rx))
}
