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
