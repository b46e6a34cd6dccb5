//! The messages of BuildKit's control API (`moby.buildkit.v1.Control`, from
//! ../shared/specs/buildkit/api_services_control_control.proto and
//! api_types_worker.proto) and of the frontend gateway a client drives a build
//! through (`moby.buildkit.v1.frontend.LLBBridge`, BuildKit's
//! frontend/gateway/pb/gateway.proto). Only the fields berth reads or answers;
//! prost skips the others on decoding.

use crate::proto::Timestamp;
use prost::Message;
use std::collections::HashMap;

/// pb.Definition: an LLB graph. berth builds Dockerfiles, not raw LLB, so it
/// only needs to see whether one was sent.
#[derive(Clone, PartialEq, Message)]
pub struct Definition {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub def: Vec<Vec<u8>>,
}

/// moby.buildkit.v1.Exporter
#[derive(Clone, PartialEq, Message)]
pub struct Exporter {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(map = "string, string", tag = "2")]
    pub attrs: HashMap<String, String>,
}

/// moby.buildkit.v1.CacheOptionsEntry (and the gateway's).
#[derive(Clone, PartialEq, Message)]
pub struct CacheOptionsEntry {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(map = "string, string", tag = "2")]
    pub attrs: HashMap<String, String>,
}

/// moby.buildkit.v1.CacheOptions
#[derive(Clone, PartialEq, Message)]
pub struct CacheOptions {
    #[prost(message, repeated, tag = "4")]
    pub exports: Vec<CacheOptionsEntry>,
    #[prost(message, repeated, tag = "5")]
    pub imports: Vec<CacheOptionsEntry>,
}

/// moby.buildkit.v1.SolveRequest
#[derive(Clone, PartialEq, Message)]
pub struct SolveRequest {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(message, optional, tag = "2")]
    pub definition: Option<Definition>,
    #[prost(string, tag = "3")]
    pub exporter_deprecated: String,
    #[prost(map = "string, string", tag = "4")]
    pub exporter_attrs_deprecated: HashMap<String, String>,
    #[prost(string, tag = "5")]
    pub session: String,
    #[prost(string, tag = "6")]
    pub frontend: String,
    #[prost(map = "string, string", tag = "7")]
    pub frontend_attrs: HashMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub cache: Option<CacheOptions>,
    #[prost(map = "string, message", tag = "10")]
    pub frontend_inputs: HashMap<String, Definition>,
    #[prost(bool, tag = "11")]
    pub internal: bool,
    #[prost(message, repeated, tag = "13")]
    pub exporters: Vec<Exporter>,
}

/// moby.buildkit.v1.SolveResponse
#[derive(Clone, PartialEq, Message)]
pub struct SolveResponse {
    #[prost(map = "string, string", tag = "1")]
    pub exporter_response: HashMap<String, String>,
}

/// moby.buildkit.v1.StatusRequest
#[derive(Clone, PartialEq, Message)]
pub struct StatusRequest {
    #[prost(string, tag = "1")]
    pub r#ref: String,
}

/// pb.Platform
#[derive(Clone, PartialEq, Message)]
pub struct Platform {
    #[prost(string, tag = "1")]
    pub architecture: String,
    #[prost(string, tag = "2")]
    pub os: String,
    #[prost(string, tag = "3")]
    pub variant: String,
}

/// moby.buildkit.v1.types.GCPolicy
#[derive(Clone, PartialEq, Message)]
pub struct GcPolicy {
    #[prost(bool, tag = "1")]
    pub all: bool,
    #[prost(int64, tag = "2")]
    pub keep_duration: i64,
    #[prost(int64, tag = "3")]
    pub reserved_space: i64,
}

/// moby.buildkit.v1.types.BuildkitVersion
#[derive(Clone, PartialEq, Message)]
pub struct BuildkitVersion {
    #[prost(string, tag = "1")]
    pub package: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub revision: String,
}

/// moby.buildkit.v1.types.WorkerRecord
#[derive(Clone, PartialEq, Message)]
pub struct WorkerRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(map = "string, string", tag = "2")]
    pub labels: HashMap<String, String>,
    #[prost(message, repeated, tag = "3")]
    pub platforms: Vec<Platform>,
    #[prost(message, repeated, tag = "4")]
    pub gc_policy: Vec<GcPolicy>,
    #[prost(message, optional, tag = "5")]
    pub buildkit_version: Option<BuildkitVersion>,
}

/// moby.buildkit.v1.ListWorkersRequest
#[derive(Clone, PartialEq, Message)]
pub struct ListWorkersRequest {
    #[prost(string, repeated, tag = "1")]
    pub filter: Vec<String>,
}

/// moby.buildkit.v1.ListWorkersResponse
#[derive(Clone, PartialEq, Message)]
pub struct ListWorkersResponse {
    #[prost(message, repeated, tag = "1")]
    pub record: Vec<WorkerRecord>,
}

/// moby.buildkit.v1.InfoResponse
#[derive(Clone, PartialEq, Message)]
pub struct InfoResponse {
    #[prost(message, optional, tag = "1")]
    pub buildkit_version: Option<BuildkitVersion>,
}

/// moby.buildkit.v1.DiskUsageRequest
#[derive(Clone, PartialEq, Message)]
pub struct DiskUsageRequest {
    #[prost(string, repeated, tag = "1")]
    pub filter: Vec<String>,
}

/// moby.buildkit.v1.UsageRecord
#[derive(Clone, PartialEq, Message)]
pub struct UsageRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub mutable: bool,
    #[prost(bool, tag = "3")]
    pub in_use: bool,
    #[prost(int64, tag = "4")]
    pub size: i64,
    #[prost(message, optional, tag = "6")]
    pub created_at: Option<Timestamp>,
    #[prost(message, optional, tag = "7")]
    pub last_used_at: Option<Timestamp>,
    #[prost(int64, tag = "8")]
    pub usage_count: i64,
    #[prost(string, tag = "9")]
    pub description: String,
    #[prost(string, tag = "10")]
    pub record_type: String,
    #[prost(bool, tag = "11")]
    pub shared: bool,
}

/// moby.buildkit.v1.DiskUsageResponse
#[derive(Clone, PartialEq, Message)]
pub struct DiskUsageResponse {
    #[prost(message, repeated, tag = "1")]
    pub record: Vec<UsageRecord>,
}

/// moby.buildkit.v1.PruneRequest
#[derive(Clone, PartialEq, Message)]
pub struct PruneRequest {
    #[prost(string, repeated, tag = "1")]
    pub filter: Vec<String>,
    #[prost(bool, tag = "2")]
    pub all: bool,
    #[prost(int64, tag = "3")]
    pub keep_duration: i64,
    #[prost(int64, tag = "4")]
    pub reserved_space: i64,
    #[prost(int64, tag = "5")]
    pub max_used_space: i64,
}

/// moby.buildkit.v1.apicaps.APICap
#[derive(Clone, PartialEq, Message)]
pub struct ApiCap {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub enabled: bool,
}

/// moby.buildkit.v1.frontend.PongResponse
#[derive(Clone, PartialEq, Message)]
pub struct PongResponse {
    #[prost(message, repeated, tag = "1")]
    pub frontend_api_caps: Vec<ApiCap>,
    #[prost(message, repeated, tag = "2")]
    pub llb_caps: Vec<ApiCap>,
    #[prost(message, repeated, tag = "3")]
    pub workers: Vec<WorkerRecord>,
}

/// moby.buildkit.v1.frontend.SolveRequest
#[derive(Clone, PartialEq, Message)]
pub struct GatewaySolveRequest {
    #[prost(message, optional, tag = "1")]
    pub definition: Option<Definition>,
    #[prost(string, tag = "2")]
    pub frontend: String,
    #[prost(map = "string, string", tag = "3")]
    pub frontend_opt: HashMap<String, String>,
    #[prost(bool, tag = "10")]
    pub r#final: bool,
    #[prost(message, repeated, tag = "12")]
    pub cache_imports: Vec<CacheOptionsEntry>,
    #[prost(map = "string, message", tag = "13")]
    pub frontend_inputs: HashMap<String, Definition>,
    #[prost(bool, tag = "14")]
    pub evaluate: bool,
}

/// moby.buildkit.v1.frontend.Ref
#[derive(Clone, PartialEq, Message)]
pub struct Ref {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// moby.buildkit.v1.frontend.RefMap
#[derive(Clone, PartialEq, Message)]
pub struct RefMap {
    #[prost(map = "string, message", tag = "1")]
    pub refs: HashMap<String, Ref>,
}

/// moby.buildkit.v1.frontend.RefMapDeprecated
#[derive(Clone, PartialEq, Message)]
pub struct RefMapDeprecated {
    #[prost(map = "string, string", tag = "1")]
    pub refs: HashMap<String, String>,
}

/// moby.buildkit.v1.frontend.Result's `result` oneof.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResultRefs {
    #[prost(string, tag = "1")]
    RefDeprecated(String),
    #[prost(message, tag = "2")]
    RefsDeprecated(RefMapDeprecated),
    #[prost(message, tag = "3")]
    Ref(Ref),
    #[prost(message, tag = "4")]
    Refs(RefMap),
}

/// moby.buildkit.v1.frontend.Result
#[derive(Clone, PartialEq, Message)]
pub struct GatewayResult {
    #[prost(oneof = "ResultRefs", tags = "1, 2, 3, 4")]
    pub result: Option<ResultRefs>,
    #[prost(map = "string, bytes", tag = "10")]
    pub metadata: HashMap<String, Vec<u8>>,
}

impl GatewayResult {
    /// The ids of the refs the result names (one, or one per platform).
    pub fn ref_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = match &self.result {
            None => Vec::new(),
            Some(ResultRefs::RefDeprecated(id)) => vec![id.clone()],
            Some(ResultRefs::Ref(r)) => vec![r.id.clone()],
            Some(ResultRefs::RefsDeprecated(m)) => m.refs.values().cloned().collect(),
            Some(ResultRefs::Refs(m)) => m.refs.values().map(|r| r.id.clone()).collect(),
        };
        ids.retain(|id| !id.is_empty());
        ids
    }
}

/// moby.buildkit.v1.frontend.SolveResponse
#[derive(Clone, PartialEq, Message)]
pub struct GatewaySolveResponse {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(message, optional, tag = "3")]
    pub result: Option<GatewayResult>,
}

/// google.rpc.Status (without details).
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// moby.buildkit.v1.frontend.ReturnRequest
#[derive(Clone, PartialEq, Message)]
pub struct ReturnRequest {
    #[prost(message, optional, tag = "1")]
    pub result: Option<GatewayResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<RpcStatus>,
}

/// An empty message (PingRequest, ReturnResponse, InfoRequest, ...).
#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_result_names_its_refs_in_every_form() {
        let one = GatewayResult {
            result: Some(ResultRefs::Ref(Ref { id: "a".into() })),
            metadata: HashMap::new(),
        };
        let b = one.encode_to_vec();
        // field 3, length-delimited, holding field 1 "a"
        assert_eq!(&b[..5], [0x1a, 0x03, 0x0a, 0x01, b'a']);
        assert_eq!(GatewayResult::decode(&b[..]).unwrap().ref_ids(), ["a"]);
        let old = GatewayResult {
            result: Some(ResultRefs::RefDeprecated("b".into())),
            metadata: HashMap::new(),
        };
        assert_eq!(old.ref_ids(), ["b"]);
        let none = GatewayResult {
            result: Some(ResultRefs::Ref(Ref { id: String::new() })),
            metadata: HashMap::new(),
        };
        assert!(none.ref_ids().is_empty());
    }
}
