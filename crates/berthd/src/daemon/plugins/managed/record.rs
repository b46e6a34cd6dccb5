//! What berth keeps of a managed plugin, on disk and while it runs.

use super::config::{Config, Settings};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

/// Docker's `Plugin` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginObj {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Enabled")]
    pub enabled: bool,
    #[serde(rename = "Settings")]
    pub settings: Settings,
    #[serde(
        rename = "PluginReference",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub reference: String,
    #[serde(rename = "Config")]
    pub config: Config,
}

/// What berth keeps of a plugin: Docker's object and its blobs' digests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub plugin: PluginObj,
    /// The config blob's digest.
    pub config: String,
    /// The compressed layers, in order.
    pub blobsums: Vec<String>,
}

/// One installed plugin.
pub struct Plugin {
    pub id: String,
    pub(super) rec: Mutex<Record>,
    /// Volumes (and other users) that rely on it: it cannot be disabled or
    /// removed without force while any do.
    pub(super) refs: AtomicUsize,
    pub(super) running: Mutex<Option<Running>>,
}

impl Plugin {
    pub(super) fn rec(&self) -> std::sync::MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn obj(&self) -> PluginObj {
        self.rec().plugin.clone()
    }

    pub fn name(&self) -> String {
        self.rec().plugin.name.clone()
    }
}

/// A running plugin's process.
pub(super) struct Running {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Becomes true when the process has exited.
    pub exited: tokio::sync::watch::Receiver<bool>,
}
