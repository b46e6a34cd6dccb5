//! What the network, volume and image services learn from the container service:
//! who uses a network, a volume, an image.

use super::record::Status;
use super::Containers;
use std::collections::HashMap;

impl crate::daemon::volume::VolumeUsers for Containers {
    fn volume_users(&self, name: &str) -> Vec<String> {
        Containers::volume_users(self, name)
    }
}

impl crate::daemon::network::NetworkUsers for Containers {
    fn attachments(&self) -> Vec<crate::daemon::network::Attachment> {
        let with = |ip: Option<std::net::IpAddr>, p: u8| {
            ip.map(|i| format!("{i}/{p}")).unwrap_or_default()
        };
        let mut out = Vec::new();
        for c in self.all() {
            let r = c.rec();
            let running = r.state.status == Status::Running;
            for ep in r.endpoints.values() {
                out.push(crate::daemon::network::Attachment {
                    network_id: ep.network_id.clone(),
                    container_id: r.id.clone(),
                    container_name: r.name.clone(),
                    running,
                    endpoint_id: ep.endpoint_id.clone(),
                    mac: ep.mac.clone(),
                    ipv4: with(ep.ipv4, ep.prefix4),
                    ipv6: with(ep.ipv6, ep.prefix6),
                });
            }
        }
        out
    }
}

impl crate::daemon::image::service::ImageUsers for Containers {
    fn image_users(&self) -> HashMap<String, i64> {
        let mut users: HashMap<String, i64> = HashMap::new();
        for c in self.all() {
            *users.entry(c.rec().image.clone()).or_default() += 1;
        }
        users
    }

    fn is_running(&self, id: &str) -> bool {
        Containers::is_running(self, id)
    }
}
