//! The set of services berthd runs.

use super::{archive, build, container, events, image, network, plugins, system, volume};
use std::sync::Arc;

/// The services berthd runs, wired together at start. The API edge (and later
/// other front ends) call these; none of them sees HTTP.
pub struct Daemon {
    pub archive: Arc<archive::Archive>,
    pub builds: Arc<build::Builds>,
    pub containers: Arc<container::Containers>,
    pub networks: Arc<network::Networks>,
    pub volumes: Arc<volume::Volumes>,
    pub images: Arc<image::service::Images>,
    pub events: Arc<events::Events>,
    pub system: system::System,
    /// Legacy plugins (volume drivers, authorization).
    pub plugins: Arc<plugins::Plugins>,
    /// `--authorization-plugin`: asked about every request and answer, in order
    /// (reloadable).
    pub authz: std::sync::RwLock<Vec<String>>,
}
