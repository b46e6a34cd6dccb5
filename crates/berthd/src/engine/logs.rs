//! `docker logs`: reads the json-file log the shim writes, with Docker's options.

use super::containers::Containers;
use crate::error::{ApiError, ApiResult};
use berth_runtime::shimproto::{frame_header, STREAM_STDERR, STREAM_STDOUT};
use bytes::Bytes;
use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Keep only the last N entries.
    pub tail: Option<usize>,
    /// Unix time in nanoseconds; entries before it are skipped.
    pub since: Option<i128>,
    pub until: Option<i128>,
}

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

/// Docker's `since`/`until` values: Unix seconds with an optional fraction.
pub fn parse_unix_nanos(s: &str) -> Option<i128> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i128 = secs.parse().ok()?;
    let mut nanos: i128 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    Some(secs * 1_000_000_000 + nanos)
}

fn entry_nanos(time: &str) -> i128 {
    super::parse_time(time)
        .and_then(|t| t.timestamp_nanos_opt())
        .map_or(0, i128::from)
}

struct Renderer {
    opts: LogOptions,
    tty: bool,
}

impl Renderer {
    fn keep(&self, e: &Entry) -> bool {
        let stream_ok = (e.stream == "stdout" && self.opts.stdout)
            || (e.stream == "stderr" && self.opts.stderr);
        if !stream_ok {
            return false;
        }
        if self.opts.since.is_some() || self.opts.until.is_some() {
            let t = entry_nanos(&e.time);
            if self.opts.since.is_some_and(|s| t < s) || self.opts.until.is_some_and(|u| t > u) {
                return false;
            }
        }
        true
    }

    fn render(&self, e: &Entry, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(e.log.len() + 32);
        if self.opts.timestamps {
            payload.extend_from_slice(e.time.as_bytes());
            payload.push(b' ');
        }
        payload.extend_from_slice(e.log.as_bytes());
        if !self.tty {
            let stream = if e.stream == "stderr" {
                STREAM_STDERR
            } else {
                STREAM_STDOUT
            };
            out.extend_from_slice(&frame_header(stream, payload.len()));
        }
        out.extend_from_slice(&payload);
    }
}

fn parse_lines(buf: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut consumed = 0;
    while let Some(pos) = buf[consumed..].iter().position(|b| *b == b'\n') {
        if let Ok(e) = serde_json::from_slice::<Entry>(&buf[consumed..consumed + pos]) {
            entries.push(e);
        }
        consumed += pos + 1;
    }
    (entries, consumed)
}

impl Containers {
    /// Streams the container's log into `tx` per `opts`. Returns once the log is
    /// read, or, when following, once the container has stopped.
    pub async fn logs(
        &self,
        key: &str,
        opts: LogOptions,
    ) -> ApiResult<(bool, mpsc::Receiver<Bytes>)> {
        let c = self.get(key)?;
        let (tty, driver) = {
            let r = c.rec();
            (r.config.tty, r.host_config.log_config.kind.clone())
        };
        if driver == "none" {
            return Err(ApiError::not_implemented(
                "configured logging driver does not support reading",
            ));
        }
        let path = self.paths.log_path(&c.id);
        let mut watch = c.watch.subscribe();
        let (tx, rx) = mpsc::channel(16);
        let r = Renderer { opts, tty };
        tokio::spawn(async move {
            let mut file = std::fs::File::open(&path).ok();
            let mut buf = Vec::new();
            if let Some(f) = file.as_mut() {
                let _ = f.read_to_end(&mut buf);
            }
            let (entries, consumed) = parse_lines(&buf);
            let mut offset = consumed as u64;
            // Like json-file: the last N lines of the log, then the stream and time filters.
            let skip = r.opts.tail.map_or(0, |n| entries.len().saturating_sub(n));
            let mut out = Vec::new();
            for e in entries[skip..].iter().filter(|e| r.keep(e)) {
                r.render(e, &mut out);
            }
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
            if !r.opts.follow {
                return;
            }
            // Following: poll the file for growth, and end once the container has
            // stopped and everything it wrote has been sent.
            loop {
                let running = watch.borrow_and_update().running;
                if file.is_none() {
                    file = std::fs::File::open(&path).ok();
                }
                if let Some(f) = file.as_mut() {
                    let mut more = Vec::new();
                    if f.seek(SeekFrom::Start(offset)).is_ok()
                        && f.read_to_end(&mut more).is_ok()
                        && !more.is_empty()
                    {
                        let (entries, consumed) = parse_lines(&more);
                        offset += consumed as u64;
                        let mut out = Vec::new();
                        for e in entries.iter().filter(|e| r.keep(e)) {
                            r.render(e, &mut out);
                        }
                        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                }
                if !running {
                    return;
                }
                tokio::select! {
                    _ = watch.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok((tty, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_with_fractions() {
        assert_eq!(parse_unix_nanos("10"), Some(10_000_000_000));
        assert_eq!(parse_unix_nanos("10.5"), Some(10_500_000_000));
        assert_eq!(parse_unix_nanos("1.000000001"), Some(1_000_000_001));
        assert_eq!(parse_unix_nanos("x"), None);
    }

    #[test]
    fn frames_carry_stream_ids_and_timestamps() {
        let r = Renderer {
            opts: LogOptions {
                stdout: true,
                stderr: true,
                timestamps: true,
                ..Default::default()
            },
            tty: false,
        };
        let line: &[u8] = b"{\"log\":\"hi\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:00.000000001Z\"}\n";
        let input = [line, b"partial"].concat();
        let (entries, used) = parse_lines(&input);
        assert_eq!(used, line.len(), "the partial last line is left for later");
        let mut out = Vec::new();
        r.render(&entries[0], &mut out);
        assert_eq!(&out[..8], &[2, 0, 0, 0, 0, 0, 0, 34]);
        assert_eq!(&out[8..], b"2024-01-01T00:00:00.000000001Z hi\n");
    }
}
