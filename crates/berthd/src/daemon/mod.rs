//! The services behind the API, one folder per subsystem, each owning its state.
//! They take typed calls and never see HTTP. Dependencies run one way: containers
//! use networks, volumes and images; those learn who uses them through the traits
//! in `users`; `system` reads them all; the leaf modules (paths, time, ids,
//! events, stream, users) use none of them.

pub mod archive;
pub mod build;
pub mod container;
pub mod df;
pub mod events;
pub mod filter;
pub mod ids;
pub mod image;
pub mod metrics;
pub mod mountinfo;
pub mod network;
pub mod paths;
pub mod plugins;
pub mod services;
pub mod shim;
pub mod stream;
pub mod system;
pub mod time;
pub mod userns;
pub mod users;
pub mod volume;
