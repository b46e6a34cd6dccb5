//! `/build`: the classic build endpoint (`POST /build`), `/build/prune` and
//! `/build/cancel`. Parses the query, hands the body to the build service.

use crate::api::http::{self, BodyReader, Call, Resp};
use crate::daemon::build::{BuildRequest, SessionOutput};
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use hyper::{Method, StatusCode};
use std::collections::BTreeMap;
use std::sync::Arc;

fn json_param<T: serde::de::DeserializeOwned + Default>(call: &Call, k: &str) -> ApiResult<T> {
    match call.query.get(k).filter(|v| !v.is_empty()) {
        None => Ok(T::default()),
        // Clients send `null` for an empty list or map.
        Some(v) => serde_json::from_str::<Option<T>>(v)
            .map(Option::unwrap_or_default)
            .map_err(|e| ApiError::invalid(format!("invalid {k}: {e}"))),
    }
}

pub(super) async fn route(
    d: &Arc<Daemon>,
    call: &mut Call,
    segs: &[&str],
) -> ApiResult<Option<Resp>> {
    let q = &call.query;
    Ok(Some(match (&call.method, segs) {
        (&Method::POST, []) => {
            let buildkit = q.get("version") == Some("2");
            // A BuildKit client's tar context, sent beside its build (`docker build -
            // < ctx.tar`): answered once that build has read it.
            if let Some(id) = q
                .get("buildid")
                .and_then(|b| b.strip_prefix("upload-request:"))
                .filter(|_| buildkit)
                .map(String::from)
            {
                let body = BodyReader::new(call.take_body()?);
                d.builds
                    .upload(&id, body)
                    .await
                    .map_err(ApiError::invalid)?;
                return Ok(Some(http::empty(StatusCode::OK)));
            }
            if buildkit && q.get("session").is_none_or(str::is_empty) {
                return Err(ApiError::invalid(
                    "a BuildKit build (version=2) needs a session",
                ));
            }
            // The classic builder writes the image into the store; a BuildKit
            // client's build can also have the result's files sent through its
            // session; other outputs are the client's to write (`berth build -o`).
            let mut session_output = None;
            if let Some(o) = q.get("outputs").filter(|o| !o.is_empty() && *o != "[]") {
                let outputs: Vec<serde_json::Value> = serde_json::from_str(o)
                    .map_err(|e| ApiError::invalid(format!("invalid outputs: {e}")))?;
                for v in &outputs {
                    let t = v["Type"].as_str().unwrap_or("");
                    session_output = match t {
                        "moby" | "image" | "docker" => continue,
                        "tar" if buildkit => Some(SessionOutput::Tar),
                        "local" if buildkit => Some(SessionOutput::Local),
                        _ => {
                            return Err(ApiError::invalid(format!(
                                "output type {t:?} is not written by berthd's /build: it writes the image, and a tar or a local directory through a BuildKit client's session; berth build --output writes local and tar outputs"
                            )))
                        }
                    };
                }
            }
            let build_args: BTreeMap<String, Option<String>> = json_param(call, "buildargs")?;
            let ulimits: Vec<berth_api::Ulimit> = json_param(call, "ulimits")?;
            let int = |k: &str| -> ApiResult<i64> { Ok(q.int(k)?.unwrap_or(0)) };
            let req = BuildRequest {
                dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
                tags: q
                    .get_all("t")
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
                extra_hosts: q
                    .get_all("extrahosts")
                    .into_iter()
                    .flat_map(|v| {
                        v.split(',')
                            .filter(|h| !h.is_empty())
                            .map(String::from)
                            .collect::<Vec<_>>()
                    })
                    .collect(),
                quiet: q.flag("q"),
                no_cache: q.flag("nocache"),
                pull: q.flag("pull"),
                memory: int("memory")?,
                memswap: int("memswap")?,
                cpu_shares: int("cpushares")?,
                cpuset_cpus: q.get("cpusetcpus").unwrap_or("").to_string(),
                cpu_period: int("cpuperiod")?,
                cpu_quota: int("cpuquota")?,
                // A build arg without a value takes none (the client fills it in).
                build_args: build_args
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect(),
                shm_size: int("shmsize")?,
                labels: json_param(call, "labels")?,
                network_mode: q.get("networkmode").unwrap_or("").to_string(),
                platform: q.get("platform").unwrap_or("").to_string(),
                target: q.get("target").unwrap_or("").to_string(),
                remote: q.get("remote").filter(|r| !r.is_empty()).map(String::from),
                build_id: q.get("buildid").filter(|r| !r.is_empty()).map(String::from),
                ulimits,
                buildkit,
                // A BuildKit client's session (its context and outputs), or
                // berth's (its secrets and SSH agents).
                session: q.get("session").filter(|s| !s.is_empty()).map(String::from),
                session_output,
                named_contexts: Default::default(),
                cache_from: json_param(call, "cachefrom")?,
                progress: q.flag("berthprogress"),
                kept_context: match (q.get("berthcontext"), q.get("berthgeneration")) {
                    (Some(k), Some(g)) if !k.is_empty() => {
                        Some((k.to_string(), d.builds.claim_context(k, g)?))
                    }
                    _ => None,
                },
                auth: crate::daemon::image::pull::decode_registry_config(
                    call.headers
                        .get("x-registry-config")
                        .and_then(|v| v.to_str().ok()),
                ),
            };
            let mut req = req;
            for t in req.tags.iter_mut() {
                *t = berth_image::Reference::parse(t)
                    .ok()
                    .and_then(|r| r.tagged())
                    .ok_or_else(|| ApiError::invalid(format!("invalid reference format: {t}")))?;
            }
            if !matches!(
                req.network_mode.as_str(),
                "" | "default" | "bridge" | "host" | "none"
            ) {
                return Err(ApiError::invalid(format!(
                    "network mode {:?} is not supported for builds (default, bridge, host or none)",
                    req.network_mode
                )));
            }
            let body = BodyReader::new(call.take_body()?);
            http::stream(
                StatusCode::OK,
                "application/json",
                d.builds.build(req, body),
            )
        }
        (&Method::POST, ["prune"]) => {
            let keep = q.int("keep-storage")?.unwrap_or(0);
            let filters = q.filters()?;
            let until = match filters.get("until").and_then(|v| v.first()) {
                None => None,
                Some(u) => Some(
                    berth_build::exec::duration_ns(u)
                        .map(|n| n / 1_000_000_000)
                        .ok_or_else(|| ApiError::invalid(format!("invalid until filter {u:?}")))?,
                ),
            };
            let (keys, freed) = d.builds.prune(q.flag("all"), keep, until)?;
            http::json(
                StatusCode::OK,
                &serde_json::json!({ "CachesDeleted": keys, "SpaceReclaimed": freed }),
            )
        }
        // berth's extension: a context kept between builds (see
        // daemon/build/contexts.rs); the client learns which files to send.
        (&Method::POST, ["contexts", key]) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Sync {
                entries: Vec<crate::daemon::build::contexts::Entry>,
            }
            let key = key.to_string();
            let body: Sync = call.json().await?;
            let (need, generation) = d.builds.sync_context(&key, body.entries)?;
            http::json(
                StatusCode::OK,
                &serde_json::json!({ "Need": need, "Generation": generation }),
            )
        }
        (&Method::POST, ["cancel"]) => {
            let id = q.get("id").unwrap_or("");
            d.builds.cancel(id);
            http::empty(StatusCode::OK)
        }
        _ => return Ok(None),
    }))
}

/// `POST /session`: a BuildKit client's session. The connection is upgraded to
/// HTTP/2 (h2c) with the client serving gRPC on it and berthd calling.
pub(super) fn session(d: &Arc<Daemon>, call: &mut Call) -> ApiResult<Resp> {
    let header = |k: &str| {
        call.headers
            .get_all(k)
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect::<Vec<_>>()
    };
    let id = header("x-docker-expose-session-uuid")
        .into_iter()
        .next()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::invalid("X-Docker-Expose-Session-Uuid is required"))?;
    let methods = header("x-docker-expose-session-grpc-method");
    let shared_key = header("x-docker-expose-session-sharedkey")
        .into_iter()
        .next()
        .unwrap_or_default();
    let upgrade = call.upgrade.take().ok_or_else(|| {
        ApiError::invalid("a session needs an upgraded connection (Upgrade: h2c)")
    })?;
    let builds = d.builds.clone();
    tokio::spawn(async move {
        if let Ok(up) = upgrade.await {
            builds.serve_session(id, methods, shared_key, up).await;
        }
    });
    Ok(hyper::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .body(http::Body::Empty)
        .expect("valid response"))
}
