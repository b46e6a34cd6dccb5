//! The sessions BuildKit clients open (`POST /session`): each is an HTTP/2
//! connection on which the client serves gRPC (its files, secrets, SSH agent) and
//! berthd is the client. A build names its session; it may arrive before the
//! session's connection is up, so a lookup waits a little.

use berth_buildkit::grpc::Channel;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone)]
pub struct Session {
    pub channel: Channel,
    /// The gRPC methods the client serves (`/moby.filesync.v1.FileSync/DiffCopy`, ...).
    pub methods: Vec<String>,
    /// What the client calls its context across builds (buildx: the directory's
    /// name and its node), so that a copy kept from an earlier build can be
    /// brought up to date; empty when it says nothing.
    pub shared_key: String,
}

impl Session {
    pub fn serves(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    changed: tokio::sync::Notify,
}

impl Sessions {
    pub fn add(&self, id: &str, s: Session) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), s);
        self.changed.notify_waiters();
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The session `id`, waiting up to ten seconds for it to connect.
    pub async fn get(&self, id: &str) -> Option<Session> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.changed.notified();
            if let Some(s) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
                return Some(s.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}
