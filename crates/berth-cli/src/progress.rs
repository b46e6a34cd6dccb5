//! `berth build`'s live view on a terminal, as BuildKit draws it: a header with
//! the time and the steps done, one line per step (CACHED, its duration, ERROR),
//! and under each running step the last lines of its output; redrawn in place.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

const TAIL: usize = 6;

#[derive(PartialEq)]
enum Status {
    Running,
    Cached,
    Done(u64),
    Failed,
}

struct Step {
    name: String,
    status: Status,
    started: Instant,
    logs: VecDeque<String>,
    partial: String,
}

pub struct View {
    start: Instant,
    steps: BTreeMap<usize, Step>,
    drawn: usize,
    last: Instant,
}

impl Default for View {
    fn default() -> Self {
        View {
            start: Instant::now(),
            steps: BTreeMap::new(),
            drawn: 0,
            last: Instant::now() - Duration::from_secs(1),
        }
    }
}

fn width() -> usize {
    crate::terminal::size()
        .map_or(100, |(_, c)| c as usize)
        .max(40)
}

fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        s.chars().take(w.saturating_sub(1)).collect::<String>() + "…"
    }
}

impl View {
    /// One `berth.step` event: `{"id", "name", "status": {"state": ...}}` or
    /// `{"id", "log"}`.
    pub fn event(&mut self, v: &serde_json::Value) {
        let Some(id) = v["id"].as_u64().map(|i| i as usize) else {
            return;
        };
        if let Some(log) = v["log"].as_str() {
            if let Some(s) = self.steps.get_mut(&id) {
                s.partial.push_str(log);
                while let Some(p) = s.partial.find(['\n', '\r']) {
                    let line: String = s.partial.drain(..=p).collect();
                    let line = line.trim_end().to_string();
                    if !line.is_empty() {
                        s.logs.push_back(line);
                        if s.logs.len() > TAIL {
                            s.logs.pop_front();
                        }
                    }
                }
            }
            return;
        }
        let name = v["name"].as_str().unwrap_or("").to_string();
        let status = match v["status"]["state"].as_str() {
            Some("cached") => Status::Cached,
            Some("done") => Status::Done(v["status"]["ms"].as_u64().unwrap_or(0)),
            Some("failed") => Status::Failed,
            _ => Status::Running,
        };
        let s = self.steps.entry(id).or_insert_with(|| Step {
            name: name.clone(),
            status: Status::Running,
            started: Instant::now(),
            logs: VecDeque::new(),
            partial: String::new(),
        });
        s.name = name;
        if status == Status::Running {
            s.started = Instant::now();
        }
        s.status = status;
    }

    /// Redraws (at most ten times a second unless `force`).
    pub fn draw(&mut self, force: bool) {
        if !force && self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        let w = width();
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        let finished = self
            .steps
            .values()
            .filter(|s| s.status != Status::Running)
            .count();
        let mut lines = vec![format!(
            "[+] Building {:.1}s ({finished}/{})",
            self.start.elapsed().as_secs_f64(),
            self.steps.len()
        )];
        for s in self.steps.values() {
            let (prefix, time) = match s.status {
                Status::Running => ("", format!("{:.1}s", s.started.elapsed().as_secs_f64())),
                Status::Cached => ("CACHED ", "0.0s".to_string()),
                Status::Done(ms) => ("", format!("{:.1}s", ms as f64 / 1000.0)),
                Status::Failed => (
                    "ERROR ",
                    format!("{:.1}s", s.started.elapsed().as_secs_f64()),
                ),
            };
            let head = fit(
                &format!(" => {prefix}{}", s.name),
                w.saturating_sub(time.len() + 1),
            );
            let pad = w.saturating_sub(head.chars().count() + time.len()).max(1);
            lines.push(format!("{head}{}{time}", " ".repeat(pad)));
            if matches!(s.status, Status::Running | Status::Failed) {
                for l in &s.logs {
                    lines.push(format!(
                        "\x1b[2m{}\x1b[0m",
                        fit(&format!(" => => # {l}"), w)
                    ));
                }
            }
        }
        for l in &lines {
            out.push_str(l);
            out.push('\n');
        }
        self.drawn = lines.len();
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(out.as_bytes());
        let _ = e.flush();
    }
}
