//! BuildKit's protocol, the parts berth serves: the messages (`proto`), gRPC over
//! an HTTP/2 connection (`grpc`), the session a client exposes (`session`: its
//! files through `filesync`, its secrets), and progress as BuildKit's status
//! (`status`). Knows nothing of the daemon.

pub mod filesync;
pub mod grpc;
pub mod proto;
