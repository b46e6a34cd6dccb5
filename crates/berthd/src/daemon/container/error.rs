//! A failing step of the container service: what failed, for which container,
//! and why (the source). Refusals in Docker's words (no such container, a name
//! in use, a bad option) are `ApiError`s made where they are decided; these are
//! the daemon's own failures. `crate::error` gives each its category.

use berth_net::netlink;
use berth_runtime::cgroups::CgroupError;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("saving the record of container {id}")]
    Persist {
        id: String,
        #[source]
        source: berth_image::StoreError,
    },
    #[error("preparing {} for container {id}", path.display())]
    Layout {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing {} of container {id}", path.display())]
    Remove {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing interface {ifname} of container {id}")]
    Unlink {
        id: String,
        ifname: String,
        #[source]
        source: netlink::Error,
    },
    #[error("opening a netlink socket")]
    Netlink {
        #[source]
        source: io::Error,
    },
    #[error("{step} the network namespace of container {id}")]
    Namespace {
        id: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("setting up the container's network ({ifname})")]
    Link {
        ifname: String,
        #[source]
        source: netlink::Error,
    },
    #[error("creating a network namespace")]
    NewNamespace {
        #[source]
        source: io::Error,
    },
    #[error("bridge {bridge} of network {network} is missing")]
    BridgeMissing { bridge: String, network: String },
    #[error("{ifname} did not appear in the container")]
    InterfaceMissing { ifname: String },
    #[error("reserving {binding}")]
    PortSocket {
        binding: String,
        #[source]
        source: rustix::io::Errno,
    },
    /// Docker's words for a host port that cannot be had.
    #[error("failed to bind host port {binding}: {why}")]
    PortBind { binding: String, why: String },
    #[error("driver failed programming external connectivity on endpoint {name} ({id})")]
    Publish {
        name: String,
        id: String,
        #[source]
        source: Box<Error>,
    },
    #[error("starting the embedded DNS server of container {id}")]
    Dns {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("writing {file} of container {id}")]
    NetFile {
        id: String,
        file: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{} {id}", if *pause { "pausing" } else { "unpausing" })]
    Freeze {
        id: String,
        pause: bool,
        #[source]
        source: CgroupError,
    },
    /// Docker's words for limits the kernel refuses (a 400 in Docker).
    #[error("Cannot update container {id}")]
    Update {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("listing the processes of {id}")]
    Processes {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("Error running ps")]
    Ps {
        #[source]
        source: io::Error,
    },
    #[error("copying the image's {path} into the volume")]
    CopyUp {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("giving the volume at {path} to the remapped root")]
    VolumeOwner {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("resizing the terminal")]
    Resize {
        #[source]
        source: io::Error,
    },
    #[error("passing the network namespace to the shim of {id}")]
    PassNamespace {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("sending signal {signo} to {id}")]
    Signal {
        id: String,
        signo: i32,
        #[source]
        source: rustix::io::Errno,
    },
}
