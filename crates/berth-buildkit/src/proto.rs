//! The protobuf messages berth exchanges with BuildKit clients, written from the
//! field numbers of ../shared/specs/buildkit (fsutil's wire and stat types, the
//! session's file sync and secrets, the control API's status).

use prost::Message;
use std::collections::HashMap;

/// fsutil.types.Stat
#[derive(Clone, PartialEq, Message)]
pub struct Stat {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(uint32, tag = "2")]
    pub mode: u32,
    #[prost(uint32, tag = "3")]
    pub uid: u32,
    #[prost(uint32, tag = "4")]
    pub gid: u32,
    #[prost(int64, tag = "5")]
    pub size: i64,
    #[prost(int64, tag = "6")]
    pub mod_time: i64,
    #[prost(string, tag = "7")]
    pub linkname: String,
    #[prost(int64, tag = "8")]
    pub devmajor: i64,
    #[prost(int64, tag = "9")]
    pub devminor: i64,
    #[prost(map = "string, bytes", tag = "10")]
    pub xattrs: HashMap<String, Vec<u8>>,
}

/// fsutil.types.Packet's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum PacketType {
    Stat = 0,
    Req = 1,
    Data = 2,
    Fin = 3,
    Err = 4,
}

/// fsutil.types.Packet
#[derive(Clone, PartialEq, Message)]
pub struct Packet {
    #[prost(enumeration = "PacketType", tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub stat: Option<Stat>,
    #[prost(uint32, tag = "3")]
    pub id: u32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// moby.filesync.v1.BytesMessage (and the control API's).
#[derive(Clone, PartialEq, Message)]
pub struct BytesMessage {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

/// moby.buildkit.secrets.v1.GetSecretRequest
#[derive(Clone, PartialEq, Message)]
pub struct GetSecretRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(map = "string, string", tag = "2")]
    pub annotations: HashMap<String, String>,
}

/// moby.buildkit.secrets.v1.GetSecretResponse
#[derive(Clone, PartialEq, Message)]
pub struct GetSecretResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

/// moby.sshforward.v1.CheckAgentRequest
#[derive(Clone, PartialEq, Message)]
pub struct CheckAgentRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// moby.sshforward.v1.CheckAgentResponse
#[derive(Clone, PartialEq, Message)]
pub struct CheckAgentResponse {}

/// moby.filesync.v1.CredentialsRequest (the session's registry credentials).
#[derive(Clone, PartialEq, Message)]
pub struct CredentialsRequest {
    #[prost(string, tag = "1")]
    pub host: String,
}

/// moby.filesync.v1.CredentialsResponse: a username and password, or no username
/// and an identity token.
#[derive(Clone, PartialEq, Message)]
pub struct CredentialsResponse {
    #[prost(string, tag = "1")]
    pub username: String,
    #[prost(string, tag = "2")]
    pub secret: String,
}

/// google.protobuf.Timestamp
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        }
    }
}

/// moby.buildkit.v1.Vertex
#[derive(Clone, PartialEq, Message)]
pub struct Vertex {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(string, repeated, tag = "2")]
    pub inputs: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(bool, tag = "4")]
    pub cached: bool,
    #[prost(message, optional, tag = "5")]
    pub started: Option<Timestamp>,
    #[prost(message, optional, tag = "6")]
    pub completed: Option<Timestamp>,
    #[prost(string, tag = "7")]
    pub error: String,
}

/// moby.buildkit.v1.VertexLog
#[derive(Clone, PartialEq, Message)]
pub struct VertexLog {
    #[prost(string, tag = "1")]
    pub vertex: String,
    #[prost(message, optional, tag = "2")]
    pub timestamp: Option<Timestamp>,
    #[prost(int64, tag = "3")]
    pub stream: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub msg: Vec<u8>,
}

/// moby.buildkit.v1.VertexWarning (without source ranges).
#[derive(Clone, PartialEq, Message)]
pub struct VertexWarning {
    #[prost(string, tag = "1")]
    pub vertex: String,
    #[prost(int64, tag = "2")]
    pub level: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub short: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub detail: Vec<Vec<u8>>,
    #[prost(string, tag = "5")]
    pub url: String,
}

/// moby.buildkit.v1.StatusResponse (vertexes, logs and warnings; berth sends no
/// statuses).
#[derive(Clone, PartialEq, Message)]
pub struct StatusResponse {
    #[prost(message, repeated, tag = "1")]
    pub vertexes: Vec<Vertex>,
    #[prost(message, repeated, tag = "3")]
    pub logs: Vec<VertexLog>,
    #[prost(message, repeated, tag = "4")]
    pub warnings: Vec<VertexWarning>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_with_buildkits_field_numbers() {
        let p = Packet {
            r#type: PacketType::Req as i32,
            stat: None,
            id: 7,
            data: Vec::new(),
        };
        let b = p.encode_to_vec();
        // field 1 (varint) = 1, field 3 (varint) = 7
        assert_eq!(b, [0x08, 0x01, 0x18, 0x07]);
        assert_eq!(Packet::decode(&b[..]).unwrap(), p);
        let s = Stat {
            path: "a".into(),
            mode: 0o644,
            ..Default::default()
        };
        let b = s.encode_to_vec();
        assert_eq!(&b[..3], [0x0a, 0x01, b'a']);
    }
}
