//! berth's Dockerfile builder. The frontend (`parser`, `instruction`, `shell`,
//! `ignore`, `stages`) reads a Dockerfile as the reference defines it; `exec`
//! builds the stages a target needs over a [`backend::Backend`], the narrow
//! interface through which the daemon runs steps and stores layers, cache records
//! and the result.

pub mod backend;
pub mod copy;
pub mod exec;
pub mod ignore;
pub mod instruction;
pub mod parser;
pub mod rootfs;
pub mod shell;
pub mod stages;
