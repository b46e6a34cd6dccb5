//! `docker logs`: reads the json-file log the shim writes, with Docker's options.

use crate::daemon::container::Containers;
use crate::error::{ApiError, ApiResult};
use berth_runtime::shimproto::{frame_header, STREAM_STDERR, STREAM_STDOUT};
use bytes::Bytes;
use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;
use tokio::sync::mpsc;

/// How a container's log file is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rotation {
    /// (max-size, max-file) when the file rotates.
    pub rotate: Option<(u64, u32)>,
    /// Rotated files are gzipped.
    pub compress: bool,
    /// A remote driver with `cache-disabled=true`: no local file at all.
    pub cache_disabled: bool,
}

/// `--log-driver` and `--log-opt`: json-file (no rotation unless asked), or local
/// (Docker's defaults: 20 MB, 5 files, compressed; stored in berth's json lines,
/// which only `docker logs` reads, as with Docker's own local format).
pub fn rotation(cfg: &berth_api::LogConfig) -> ApiResult<Rotation> {
    let opts = cfg.config.clone().unwrap_or_default();
    if super::logdrivers::REMOTE.contains(&cfg.kind.as_str()) {
        // The dual-logging cache, kept like the local driver's files.
        super::logdrivers::validate(&cfg.kind, &opts)?;
        return Ok(match super::logdrivers::cache(&opts)? {
            None => Rotation {
                rotate: None,
                compress: false,
                cache_disabled: true,
            },
            Some((size, files, compress)) => Rotation {
                rotate: Some((size, files)),
                compress: compress && files > 1,
                cache_disabled: false,
            },
        });
    }
    let local = cfg.kind == "local";
    if cfg.kind != "none" {
        super::logdrivers::mode(&opts)?;
    }
    let mut size = local.then_some(20 << 20);
    let mut files = if local { 5 } else { 1 };
    let mut compress = local;
    for (k, v) in &opts {
        match k.as_str() {
            "max-size" if v == "-1" => size = None,
            "max-size" => {
                size = Some(berth_api::parse_size(v).filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::invalid(format!("invalid value for log-opt max-size: {v}"))
                })? as u64);
            }
            "max-file" => {
                files = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ApiError::invalid("max-file cannot be less than 1"))?;
            }
            "compress" => {
                compress = v.parse::<bool>().map_err(|_| {
                    ApiError::invalid(format!("invalid value for log-opt compress: {v}"))
                })?;
            }
            // Checked (logdrivers::mode) and accepted: the shim writes a file
            // entry as soon as the output arrives, in its own loop, so the
            // container waits on a disk write at most; there is no separate
            // buffer for non-blocking mode to bound (README says so).
            "mode" | "max-buffer-size" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown log opt '{other}' for {} log driver",
                    if local { "local" } else { "json-file" }
                )))
            }
        }
    }
    if files > 1 && size.is_none() {
        return Err(ApiError::invalid(
            "max-file cannot be greater than 1 when max-size is not set",
        ));
    }
    Ok(Rotation {
        rotate: size.map(|s| (s, files)),
        compress: compress && size.is_some() && files > 1,
        cache_disabled: false,
    })
}

/// The log's files, oldest first: `<log>.N[.gz]` ... `<log>.1[.gz]`, `<log>`.
fn log_files(path: &std::path::Path, max_files: u32) -> Vec<std::path::PathBuf> {
    let numbered = |n: u32, gz: bool| {
        let mut p = path.to_path_buf().into_os_string();
        p.push(format!(".{n}{}", if gz { ".gz" } else { "" }));
        std::path::PathBuf::from(p)
    };
    let mut out: Vec<std::path::PathBuf> = (1..max_files)
        .rev()
        .flat_map(|n| [numbered(n, true), numbered(n, false)])
        .filter(|p| p.exists())
        .collect();
    out.push(path.to_path_buf());
    out
}

/// Reads a whole log file, decompressing a rotated `.gz` one.
fn read_log_file(
    p: &std::path::Path,
    buf: &mut Vec<u8>,
) -> std::io::Result<(std::fs::File, usize)> {
    let f = std::fs::File::open(p)?;
    let n = if p.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(&f).read_to_end(buf)?
    } else {
        (&f).read_to_end(buf)?
    };
    Ok((f, n))
}

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

fn entry_nanos(time: &str) -> i128 {
    crate::daemon::time::parse_time(time)
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
        let (tty, driver, readable) = {
            let r = c.rec();
            (
                r.config.tty,
                r.host_config.log_config.kind.clone(),
                rotation(&r.host_config.log_config).is_ok_and(|r| !r.cache_disabled),
            )
        };
        if driver == "none" || !readable {
            return Err(ApiError::not_implemented(
                "configured logging driver does not support reading",
            ));
        }
        let path = self.paths.log_path(&c.id);
        let max_files = {
            let r = c.rec();
            rotation(&r.host_config.log_config)
                .ok()
                .and_then(|r| r.rotate)
                .map_or(1, |(_, n)| n)
        };
        let mut watch = c.watch.subscribe();
        let (tx, rx) = mpsc::channel(16);
        let r = Renderer { opts, tty };
        tokio::spawn(async move {
            use std::os::unix::fs::MetadataExt;
            let mut buf = Vec::new();
            let mut file = None;
            let mut current_read = 0u64;
            for p in log_files(&path, max_files) {
                if let Ok((f, n)) = read_log_file(&p, &mut buf) {
                    if p == path {
                        current_read = n as u64;
                        file = Some(f);
                    }
                }
            }
            let (entries, consumed) = parse_lines(&buf);
            // Following resumes in the current file, at the partial line left over.
            let mut offset = current_read.saturating_sub((buf.len() - consumed) as u64);
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
            // Following: poll the file for growth; when the shim rotates it (the path
            // names a new file), finish the old one and go on with the new from its
            // start. End once the container has stopped and all it wrote was sent.
            loop {
                let running = watch.borrow_and_update().running;
                if file.is_none() {
                    file = std::fs::File::open(&path).ok();
                    offset = 0;
                }
                let mut progressed = false;
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
                        progressed = consumed > 0;
                    }
                    let rotated = match (f.metadata(), std::fs::metadata(&path)) {
                        (Ok(a), Ok(b)) => a.ino() != b.ino(),
                        _ => false,
                    };
                    if !progressed && rotated {
                        file = None;
                        continue;
                    }
                }
                if progressed {
                    continue;
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
    use crate::daemon::time::parse_unix_nanos;

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
