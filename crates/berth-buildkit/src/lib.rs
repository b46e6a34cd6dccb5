//! BuildKit's protocol, the parts berth speaks: the messages (`proto` for the
//! session's file sync, secrets and status, `control` for the control API and the
//! frontend gateway), gRPC over an HTTP/2 connection berth already has, as a
//! client (`grpc`: calling the services a client's session exposes) and as a
//! server (`server`: the control API on `POST /grpc`), and the file sync
//! protocol (`filesync`). Knows nothing of the daemon.

pub mod control;
pub mod filesync;
pub mod grpc;
pub mod proto;
pub mod server;
