//! Docker's plugins, looked up by name as dockerd looks them up: a managed
//! plugin (installed and run by berth, see `managed/`) first, then a legacy
//! plugin (a program someone else runs, see `legacy.rs`). Volumes and the
//! authorization check call plugins through [`Plugins`] only.

pub mod legacy;
pub mod managed;

use crate::error::{ApiError, ApiResult};
pub use legacy::DEFAULT_DIRS;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Runs a plugin call, which blocks (the protocol client is synchronous and
/// waits for a restarting plugin's socket): on one of the runtime's workers it
/// first hands the worker's other tasks to the rest, so a slow plugin holds no
/// request but its own.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A plugin ready to be called for one capability.
struct Found {
    socket: PathBuf,
    /// A managed plugin's view of paths (None: a legacy plugin's paths are the
    /// host's).
    managed: Option<managed::Serving>,
}

pub struct Plugins {
    legacy: legacy::Legacy,
    managed: Option<Arc<managed::Managed>>,
}

impl Plugins {
    pub fn new(dirs: Vec<PathBuf>, managed: Option<Arc<managed::Managed>>) -> Plugins {
        Plugins {
            legacy: legacy::Legacy::new(dirs),
            managed,
        }
    }

    /// Plugin `name` for `kind` (the protocol's word: `VolumeDriver`, `authz`).
    fn find(&self, name: &str, kind: &str, not_found: impl Fn() -> ApiError) -> ApiResult<Found> {
        if let Some(m) = &self.managed {
            if let Some(s) = m.serving(name, kind)? {
                return Ok(Found {
                    socket: s.socket.clone(),
                    managed: Some(s),
                });
            }
        }
        Ok(Found {
            socket: blocking(|| self.legacy.activate(name, kind, not_found))?,
            managed: None,
        })
    }

    fn volume_driver(&self, driver: &str) -> ApiResult<Found> {
        self.find(driver, "VolumeDriver", || {
            ApiError::not_found(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            ))
        })
    }

    /// Calls `VolumeDriver.<method>` of plugin `driver`.
    pub fn volume_call(&self, driver: &str, method: &str, body: &Value) -> ApiResult<Value> {
        let f = self.volume_driver(driver)?;
        blocking(|| {
            legacy::call(
                &f.socket,
                f.managed.is_some(),
                &format!("VolumeDriver.{method}"),
                body,
            )
        })
    }

    /// The name a volume records for driver `driver`: a managed plugin's full
    /// name (`vp` is `vp:latest`), a legacy plugin's as given.
    pub fn volume_driver_name(&self, driver: &str) -> ApiResult<String> {
        let f = self.volume_driver(driver)?;
        Ok(f.managed.map_or_else(|| driver.to_string(), |s| s.name))
    }

    /// Where a path plugin `driver` answered (a mount point) is on the host,
    /// and whether it must be bound without following links: a managed
    /// plugin's path is in directories the plugin writes; a legacy plugin runs
    /// on the host with the host's trust (as with dockerd).
    pub fn volume_host_path(&self, driver: &str, answered: &str) -> ApiResult<(PathBuf, bool)> {
        let f = self.volume_driver(driver)?;
        Ok(match f.managed {
            Some(s) => (s.host_path(answered)?, true),
            None => (PathBuf::from(answered), false),
        })
    }

    /// Calls `AuthZPlugin.<method>` of authorization plugin `name`.
    pub fn authz_call(&self, name: &str, method: &str, body: &Value) -> ApiResult<Value> {
        let f = self.find(name, "authz", || {
            ApiError::internal(format!("plugin {name:?} not found"))
        })?;
        blocking(|| {
            legacy::call(
                &f.socket,
                f.managed.is_some(),
                &format!("AuthZPlugin.{method}"),
                body,
            )
        })
    }

    /// The volume drivers in use (`docker info`'s plugins): legacy ones
    /// activated so far and the enabled managed ones.
    pub fn active_volume_drivers(&self) -> Vec<String> {
        let mut v = self.legacy.active("VolumeDriver");
        if let Some(m) = &self.managed {
            v.extend(m.enabled_with("volumedriver"));
        }
        v.sort();
        v.dedup();
        v
    }

    /// A volume of driver `driver` exists: a managed plugin serving it cannot be
    /// disabled or removed without force.
    pub fn acquire(&self, driver: &str) {
        if let Some(m) = &self.managed {
            m.acquire(driver);
        }
    }

    pub fn release(&self, driver: &str) {
        if let Some(m) = &self.managed {
            m.release(driver);
        }
    }
}
