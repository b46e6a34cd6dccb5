//! A build's events as a BuildKit client reads them: a StatusResponse with a
//! vertex per step and its output as vertex logs, sent on the control API's
//! `Status` stream, or from `POST /build?version=2` as `moby.buildkit.trace`
//! messages (base64) with `moby.image.id` at the end.

use base64::Engine;
use berth_build::backend::{Event, StepState};
use berth_buildkit::proto::{StatusResponse, Timestamp, Vertex, VertexLog, VertexWarning};
use prost::Message;
use std::collections::HashMap;

#[derive(Default)]
pub struct Trace {
    nonce: u64,
    /// Step number -> its vertex's digest, name and start.
    vertices: HashMap<usize, (String, String, Timestamp)>,
}

fn status_line(s: &StatusResponse) -> serde_json::Value {
    serde_json::json!({
        "id": "moby.buildkit.trace",
        "aux": base64::engine::general_purpose::STANDARD.encode(s.encode_to_vec()),
    })
}

impl Trace {
    fn vertex(&mut self, id: usize, name: &str) -> &(String, String, Timestamp) {
        if self.nonce == 0 {
            self.nonce = rand::random::<u64>() | 1;
        }
        let nonce = self.nonce;
        self.vertices.entry(id).or_insert_with(|| {
            let digest = format!(
                "sha256:{}",
                berth_image::sha256_hex(format!("{nonce:x}/{id}").as_bytes())
            );
            (digest, name.to_string(), Timestamp::now())
        })
    }

    /// The JSON line for an event (none for what a BuildKit client does not read).
    pub fn line(&mut self, e: Event) -> Option<serde_json::Value> {
        match e {
            Event::Aux(v) => v
                .get("ID")
                .map(|id| serde_json::json!({ "id": "moby.image.id", "aux": { "ID": id } })),
            e => self.status(e).map(|s| status_line(&s)),
        }
    }

    /// The status message for an event (none for what a BuildKit client does not
    /// read).
    pub fn status(&mut self, e: Event) -> Option<StatusResponse> {
        match e {
            Event::Step { id, name, state } => {
                let (digest, _, started) = self.vertex(id, &name).clone();
                let mut v = Vertex {
                    digest,
                    name,
                    started: Some(started),
                    ..Default::default()
                };
                match state {
                    StepState::Started => {}
                    StepState::Cached => {
                        v.cached = true;
                        v.completed = Some(Timestamp::now());
                    }
                    StepState::Done { .. } => v.completed = Some(Timestamp::now()),
                    StepState::Failed { error } => {
                        v.completed = Some(Timestamp::now());
                        v.error = error;
                    }
                }
                Some(StatusResponse {
                    vertexes: vec![v],
                    ..Default::default()
                })
            }
            Event::Log { id, text } => {
                let (digest, _, _) = self.vertex(id, "").clone();
                Some(StatusResponse {
                    logs: vec![VertexLog {
                        vertex: digest,
                        timestamp: Some(Timestamp::now()),
                        stream: 1,
                        msg: text.into_bytes(),
                    }],
                    ..Default::default()
                })
            }
            // On the vertex of reading the Dockerfile, as BuildKit has it.
            Event::Warning(w) => {
                let (digest, name, started) = self
                    .vertex(
                        usize::MAX,
                        "[internal] load build definition from Dockerfile",
                    )
                    .clone();
                Some(StatusResponse {
                    vertexes: vec![Vertex {
                        digest: digest.clone(),
                        name,
                        started: Some(started),
                        completed: Some(Timestamp::now()),
                        ..Default::default()
                    }],
                    warnings: vec![VertexWarning {
                        vertex: digest,
                        level: 1,
                        short: w.into_bytes(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            }
            Event::Aux(_) | Event::Stream(_) => None,
        }
    }
}
