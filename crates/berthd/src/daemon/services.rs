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
    /// Plugins by name, managed and legacy (volume drivers, authorization).
    pub plugins: Arc<plugins::Plugins>,
    /// The managed plugins: install, enable, disable, set, upgrade, push, remove.
    pub plugin_manager: Arc<plugins::managed::Managed>,
    /// `--authorization-plugin`: asked about every request and answer, in order
    /// (reloadable).
    pub authz: std::sync::RwLock<Vec<String>>,
}
