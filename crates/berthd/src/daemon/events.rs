//! `docker events`: what happened to containers and images, in Docker's shape,
//! live and from a short history (for `since`).

use crate::error::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// How many past events `since` can reach.
const HISTORY: usize = 1024;

/// An event's `Actor.Attributes`: strings by name, as Docker's are.
pub type Attributes = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub action: String,
    pub id: String,
    pub attributes: Attributes,
    pub time_nano: i128,
}

impl Event {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": { "ID": self.id, "Attributes": self.attributes },
            "scope": "local",
            "time": (self.time_nano / 1_000_000_000) as i64,
            "timeNano": self.time_nano as i64,
        });
        // The fields of API < 1.22, which clients still read.
        if self.kind == "container" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.id);
            if let Some(img) = self.attributes.get("image") {
                v["from"] = json!(img);
            }
        }
        v
    }
}

pub struct Events {
    history: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
    total: std::sync::atomic::AtomicU64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            live: broadcast::channel(HISTORY).0,
            total: Default::default(),
        }
    }
}

fn now_nano() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

impl Events {
    pub fn emit(&self, kind: &'static str, action: &str, id: &str, attributes: Attributes) {
        let e = Event {
            kind,
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            time_nano: now_nano(),
        };
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(e.clone());
        }
        let _ = self.live.send(e);
        self.total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events emitted since berthd started (`engine_daemon_events_total`).
    pub fn total(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Subscribes first, then copies the history, so nothing falls between them.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let rx = self.live.subscribe();
        let past = self
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        (past, rx)
    }
}

/// A `filters` set for events, checked up front.
pub struct EventFilter(HashMap<String, Vec<String>>);

impl EventFilter {
    pub fn new(f: HashMap<String, Vec<String>>) -> ApiResult<EventFilter> {
        for k in f.keys() {
            if !["type", "event", "container", "image", "label"].contains(&k.as_str()) {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        Ok(EventFilter(f))
    }

    pub fn matches(&self, e: &Event) -> bool {
        let attr = |k: &str| e.attributes.get(k).map(String::as_str).unwrap_or("");
        let any = |k: &str, f: &dyn Fn(&str) -> bool| {
            self.0.get(k).is_none_or(|vs| vs.iter().any(|v| f(v)))
        };
        any("type", &|v| v == e.kind)
            && any("event", &|v| {
                v == e.action || e.action.starts_with(&format!("{v}:"))
            })
            && any("container", &|v| {
                e.kind == "container" && (e.id.starts_with(v) || attr("name") == v)
            })
            && any("image", &|v| {
                attr("image") == v || (e.kind == "image" && (e.id == v || attr("name") == v))
            })
            && self.0.get("label").is_none_or(|ls| {
                ls.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => attr(k) == v,
                    None => e.attributes.contains_key(l),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &'static str, action: &str, id: &str, attrs: Value) -> Event {
        Event {
            kind,
            action: action.into(),
            id: id.into(),
            attributes: serde_json::from_value(attrs).unwrap(),
            time_nano: 1,
        }
    }

    #[test]
    fn filters_like_docker() {
        let f = |v: Value| EventFilter::new(serde_json::from_value(v).unwrap()).unwrap();
        let start = ev(
            "container",
            "start",
            "abc123",
            json!({ "name": "web", "image": "busybox", "tier": "front" }),
        );
        assert!(f(json!({ "type": ["container"], "event": ["start"] })).matches(&start));
        assert!(f(json!({ "container": ["web"] })).matches(&start));
        assert!(f(json!({ "container": ["abc"] })).matches(&start));
        assert!(f(json!({ "label": ["tier=front"] })).matches(&start));
        assert!(!f(json!({ "event": ["die"] })).matches(&start));
        assert!(!f(json!({ "type": ["image"] })).matches(&start));
        let exec = ev("container", "exec_start: sh -c true", "abc123", json!({}));
        assert!(f(json!({ "event": ["exec_start"] })).matches(&exec));
        assert!(
            EventFilter::new(serde_json::from_value(json!({ "nope": ["x"] })).unwrap()).is_err()
        );
        assert_eq!(start.to_json()["status"], "start");
        assert_eq!(start.to_json()["Actor"]["Attributes"]["name"], "web");
    }
}
