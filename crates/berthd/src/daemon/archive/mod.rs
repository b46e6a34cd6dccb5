//! The archive service: a container's filesystem read and written from the host:
//! `docker cp` (`cp`), export, diff (`diff`) and commit (`commit`). It works on
//! containers through the container service's lookup and never runs a program of
//! the container's.

mod commit;
pub mod cp;
mod diff;
mod tree;

use crate::daemon::container::Containers;
use crate::daemon::paths::Paths;
use berth_image::Store;
use std::sync::Arc;

/// A failing step of the archive service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Docker's words: the running container's root went away under us.
    #[error("container {name} is not running")]
    NotRunning {
        name: String,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("{step} the filesystem of {name}")]
    Root {
        name: String,
        step: &'static str,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("stat {path}")]
    Stat {
        path: String,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("the image of {id}")]
    Image {
        id: String,
        #[source]
        source: berth_image::StoreError,
    },
    #[error("comparing {id} with its image")]
    Compare {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pausing {id} to commit")]
    Freeze {
        id: String,
        #[source]
        source: berth_runtime::cgroups::CgroupError,
    },
    #[error("reading the changes of {id}")]
    Changes {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} task ended abnormally")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

pub struct Archive {
    containers: Arc<Containers>,
    store: Arc<Store>,
}

impl Archive {
    pub fn new(containers: Arc<Containers>, store: Arc<Store>) -> Archive {
        Archive { containers, store }
    }

    fn paths(&self) -> &Paths {
        self.containers.paths()
    }
}
