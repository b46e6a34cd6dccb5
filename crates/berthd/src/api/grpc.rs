//! `POST /grpc`: BuildKit's control API (`moby.buildkit.v1.Control`) and the
//! frontend gateway (`moby.buildkit.v1.frontend.LLBBridge`) on the client's
//! connection, upgraded to h2c as dockerd does. This is the protocol's edge:
//! messages are decoded here, handed to the build service, and its answers and
//! errors put back as gRPC messages and statuses.

use crate::api::http::{self, Call, Resp};
use crate::daemon::build::control::{Control, ControlError, Runner, SolveSpec, RAW_LLB};
use crate::daemon::build::Builds;
use crate::daemon::services::Daemon;
use crate::error::{ApiError, ApiResult};
use berth_buildkit::control as pb;
use berth_buildkit::server::{self, Code, Reply, Status};
use hyper::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn upgrade(d: &Arc<Daemon>, call: &mut Call) -> ApiResult<Resp> {
    let upgrade = call.upgrade.take().ok_or_else(|| {
        ApiError::invalid("the BuildKit API needs an upgraded connection (Upgrade: h2c)")
    })?;
    let builds = d.builds.clone();
    tokio::spawn(async move {
        if let Ok(up) = upgrade.await {
            let handler: server::Handler = Arc::new(move |c| {
                let builds = builds.clone();
                Box::pin(async move { answer(&builds, c).await })
            });
            if let Err(e) = server::serve(up, handler).await {
                tracing::debug!(error = %e, "a BuildKit API connection ended");
            }
        }
    });
    Ok(hyper::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .body(http::Body::Empty)
        .expect("valid response"))
}

fn status(e: ControlError) -> Status {
    let code = match e {
        ControlError::Invalid(_) => Code::InvalidArgument,
        ControlError::Unsupported(_) => Code::Unimplemented,
        ControlError::NotFound(_) => Code::NotFound,
        ControlError::Failed(_) => Code::Unknown,
    };
    Status::new(code, e.to_string())
}

fn reply<M: prost::Message>(r: Result<M, Status>) -> Reply {
    match r {
        Ok(m) => Reply::one(&m),
        Err(s) => Reply::Fail(s),
    }
}

const CONTROL: &str = "/moby.buildkit.v1.Control/";
const GATEWAY: &str = "/moby.buildkit.v1.frontend.LLBBridge/";

async fn answer(builds: &Arc<Builds>, mut call: server::Call) -> Reply {
    let method = call.method.clone();
    let (b, run) = builds.control();
    if let Some(m) = method.strip_prefix(CONTROL) {
        return match m {
            "Solve" => reply(solve(b, &run, &mut call).await),
            "Status" => match call.decode::<pb::StatusRequest>().await {
                Ok(r) => {
                    let mut feed = b.status(&r.r#ref);
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    tokio::spawn(async move {
                        while let Some(s) = feed.recv().await {
                            let m = prost::Message::encode_to_vec(&s);
                            if tx.send(Ok(m.into())).is_err() {
                                break;
                            }
                        }
                    });
                    Reply::Stream(rx)
                }
                Err(s) => Reply::Fail(s),
            },
            "ListWorkers" => reply(Ok(pb::ListWorkersResponse {
                record: vec![worker()],
            })),
            "Info" => reply(Ok(pb::InfoResponse {
                buildkit_version: Some(version()),
            })),
            "DiskUsage" => reply(disk_usage(builds)),
            "Prune" => prune(builds, &mut call).await,
            _ => Reply::Fail(Status::new(
                Code::Unimplemented,
                format!("berthd does not serve {method}"),
            )),
        };
    }
    if let Some(m) = method.strip_prefix(GATEWAY) {
        let Some(id) = call.meta("buildkit-controlapi-buildid").map(String::from) else {
            return Reply::Fail(Status::new(
                Code::InvalidArgument,
                format!("{method} needs the build's id (buildkit-controlapi-buildid metadata)"),
            ));
        };
        return match m {
            "Ping" if b.gateway_known(&id).await => reply(Ok(pb::PongResponse {
                frontend_api_caps: caps(&[
                    "solve.base",
                    "solve.inlinereturn",
                    "return",
                    "returnmap",
                    "proto.refarray",
                    "frontend.caps",
                ]),
                llb_caps: caps(&["source.local", "source.local.sessionid"]),
                workers: vec![worker()],
            })),
            "Ping" => Reply::Fail(Status::new(Code::NotFound, format!("no build {id:?}"))),
            "Solve" => reply(match call.decode::<pb::GatewaySolveRequest>().await {
                Err(s) => Err(s),
                Ok(r) if r.definition.as_ref().is_some_and(|d| !d.def.is_empty()) => {
                    Err(Status::new(Code::Unimplemented, RAW_LLB))
                }
                Ok(r) => b
                    .gateway_solve(&id, &r.frontend, &r.frontend_opt, &run)
                    .await
                    .map(|image| pb::GatewaySolveResponse {
                        r#ref: String::new(),
                        result: Some(pb::GatewayResult {
                            result: Some(pb::ResultRefs::Ref(pb::Ref { id: image })),
                            metadata: HashMap::new(),
                        }),
                    })
                    .map_err(status),
            }),
            "Return" => reply(match call.decode::<pb::ReturnRequest>().await {
                Err(s) => Err(s),
                Ok(r) => {
                    let result = match (r.error, r.result) {
                        (Some(e), _) if e.code != 0 => Err(e.message),
                        (_, res) => Ok(res.map(|r| r.ref_ids()).unwrap_or_default()),
                    };
                    b.gateway_return(&id, result)
                        .await
                        .map(|()| pb::Empty {})
                        .map_err(status)
                }
            }),
            _ => Reply::Fail(Status::new(
                Code::Unimplemented,
                format!("berthd's frontend gateway does not serve {m}"),
            )),
        };
    }
    Reply::Fail(Status::new(
        Code::Unimplemented,
        format!("unknown service of {method}"),
    ))
}

async fn solve(
    b: &Control,
    run: &Runner,
    call: &mut server::Call,
) -> Result<pb::SolveResponse, Status> {
    let r: pb::SolveRequest = call.decode().await?;
    if r.definition.as_ref().is_some_and(|d| !d.def.is_empty()) {
        return Err(Status::new(Code::Unimplemented, RAW_LLB));
    }
    if !r.frontend.is_empty() && r.frontend != "dockerfile.v0" {
        return Err(Status::new(
            Code::Unimplemented,
            format!(
                "frontend {:?}: berth builds with the dockerfile.v0 frontend",
                r.frontend
            ),
        ));
    }
    if r.r#ref.is_empty() || r.session.is_empty() {
        return Err(Status::new(
            Code::InvalidArgument,
            "a solve needs its ref and the client's session",
        ));
    }
    let mut exporters: Vec<_> = r
        .exporters
        .into_iter()
        .map(|e| (e.r#type, e.attrs))
        .collect();
    if exporters.is_empty() && !r.exporter_deprecated.is_empty() {
        exporters.push((r.exporter_deprecated, r.exporter_attrs_deprecated));
    }
    let mut attrs = r.frontend_attrs;
    // Cache imports given beside the frontend's options count as theirs.
    if let Some(c) = r.cache.filter(|c| !c.imports.is_empty()) {
        let list: Vec<_> = c
            .imports
            .iter()
            .map(|e| serde_json::json!({ "Type": e.r#type, "Attrs": e.attrs }))
            .collect();
        attrs
            .entry("cache-imports".into())
            .or_insert_with(|| serde_json::Value::from(list).to_string());
    }
    let spec = SolveSpec {
        r#ref: r.r#ref,
        session: r.session,
        frontend: (!r.frontend.is_empty()).then_some(attrs),
        exporters,
    };
    b.solve(spec, run)
        .await
        .map(|exporter_response| pb::SolveResponse { exporter_response })
        .map_err(status)
}

fn caps(ids: &[&str]) -> Vec<pb::ApiCap> {
    ids.iter()
        .map(|id| pb::ApiCap {
            id: id.to_string(),
            enabled: true,
        })
        .collect()
}

fn version() -> pb::BuildkitVersion {
    pb::BuildkitVersion {
        package: "github.com/berth/berthd".into(),
        version: crate::daemon::system::VERSION.into(),
        revision: String::new(),
    }
}

/// berthd's one worker: its own runtime, the host's platform.
fn worker() -> pb::WorkerRecord {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    pb::WorkerRecord {
        id: host.clone(),
        labels: HashMap::from([
            (
                "org.mobyproject.buildkit.worker.executor".into(),
                "berth".into(),
            ),
            ("org.mobyproject.buildkit.worker.hostname".into(), host),
            (
                "org.mobyproject.buildkit.worker.network".into(),
                "host".into(),
            ),
        ]),
        platforms: vec![pb::Platform {
            architecture: berth_image::host_arch().into(),
            os: "linux".into(),
            variant: String::new(),
        }],
        gc_policy: Vec::new(),
        buildkit_version: Some(version()),
    }
}

fn usage_record(r: &berth_image::buildcache::CacheRecord) -> pb::UsageRecord {
    let ts = |s: i64| berth_buildkit::proto::Timestamp {
        seconds: s,
        nanos: 0,
    };
    pb::UsageRecord {
        id: r.key.clone(),
        mutable: false,
        in_use: false,
        size: r.size,
        created_at: Some(ts(r.created)),
        last_used_at: Some(ts(r.last_used)),
        usage_count: r.usage,
        description: r.description.clone(),
        record_type: "regular".into(),
        shared: false,
    }
}

fn disk_usage(b: &Builds) -> Result<pb::DiskUsageResponse, Status> {
    let records = b
        .cache_records()
        .map_err(|e| Status::new(Code::Internal, e.to_string()))?;
    Ok(pb::DiskUsageResponse {
        record: records.iter().map(usage_record).collect(),
    })
}

async fn prune(b: &Builds, call: &mut server::Call) -> Reply {
    let r: pb::PruneRequest = match call.decode().await {
        Ok(r) => r,
        Err(s) => return Reply::Fail(s),
    };
    if let Some(f) = r.filter.first() {
        return Reply::Fail(Status::new(
            Code::Unimplemented,
            format!(
                "prune filter {f:?}: berth prunes by age (keep-duration) and size (keep-storage)"
            ),
        ));
    }
    let before = b.cache_records().unwrap_or_default();
    let keep = r.reserved_space.max(r.max_used_space);
    // BuildKit's keepDuration is in nanoseconds.
    let until = (r.keep_duration > 0).then_some(r.keep_duration / 1_000_000_000);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    match b.prune(r.all, keep, until) {
        Ok((keys, _)) => {
            for k in keys {
                let rec = before.iter().find(|c| c.key == k).map_or_else(
                    || pb::UsageRecord {
                        id: k.clone(),
                        record_type: "exec.cachemount".into(),
                        ..Default::default()
                    },
                    usage_record,
                );
                let _ = tx.send(Ok(prost::Message::encode_to_vec(&rec).into()));
            }
        }
        Err(e) => {
            let _ = tx.send(Err(Status::new(Code::Internal, e.to_string())));
        }
    }
    Reply::Stream(rx)
}
