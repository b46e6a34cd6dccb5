//! Docker's json-file log format: one JSON object per line,
//! `{"log":"<text>\n","stream":"stdout","time":"<RFC 3339 nano>"}`. Output is cut at
//! newlines; a line longer than 16 KiB is written in pieces, as Docker does.

use berth_runtime::shimproto::STREAM_STDOUT;
use berth_runtime::timefmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const MAX_PARTIAL: usize = 16 * 1024;

pub(crate) struct JsonFileLog {
    /// None: a remote driver without its local cache.
    file: Option<File>,
    /// A remote log driver each line also goes to.
    remote: Option<crate::sidecar_pipe::LogPipe>,
    path: PathBuf,
    size: u64,
    /// `max-size` and `max-file`: past the size, the file moves to `<log>.1` (and
    /// `.1` to `.2`...), keeping at most that many files, as Docker does.
    rotate: Option<(u64, u32)>,
    /// Rotated files are gzipped: `<log>.1.gz`, `<log>.2.gz`...
    compress: bool,
    partial: [Vec<u8>; 2],
}

impl JsonFileLog {
    pub(crate) fn open(
        path: Option<&Path>,
        rotate: Option<(u64, u32)>,
        compress: bool,
        remote: Option<crate::sidecar_pipe::LogPipe>,
    ) -> std::io::Result<JsonFileLog> {
        let file = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(JsonFileLog {
            file,
            remote,
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            size,
            rotate,
            compress,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        if self.compress {
            p.push(".gz");
        }
        PathBuf::from(p)
    }

    fn append(&mut self, out: &[u8]) {
        if self.file.is_none() {
            return;
        }
        if let Some((max_size, max_files)) = self.rotate {
            if self.size > 0 && self.size + out.len() as u64 > max_size {
                if let Err(e) = self.rotate_files(max_files) {
                    eprintln!("berth-shim: rotating {}: {e}", self.path.display());
                }
            }
        }
        if self.file.as_mut().is_some_and(|f| f.write_all(out).is_ok()) {
            self.size += out.len() as u64;
        }
    }

    fn rotate_files(&mut self, max_files: u32) -> std::io::Result<()> {
        if max_files <= 1 {
            if let Some(f) = &self.file {
                f.set_len(0)?;
            }
        } else {
            let _ = std::fs::remove_file(self.numbered(max_files - 1));
            for n in (1..max_files - 1).rev() {
                let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
            }
            if self.compress {
                // Written beside, then renamed: a reader never sees half a file.
                let dest = self.numbered(1);
                let tmp = dest.with_extension("gz.tmp");
                let mut src = std::fs::File::open(&self.path)?;
                let mut gz = flate2::write::GzEncoder::new(
                    std::fs::File::create(&tmp)?,
                    flate2::Compression::fast(),
                );
                std::io::copy(&mut src, &mut gz)?;
                gz.finish()?;
                std::fs::rename(&tmp, &dest)?;
                std::fs::remove_file(&self.path)?;
            } else {
                std::fs::rename(&self.path, self.numbered(1))?;
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        self.size = 0;
        Ok(())
    }

    fn slot(stream: u8) -> usize {
        usize::from(stream != STREAM_STDOUT)
    }

    /// Logs a chunk of a stream's output. Complete lines are written at once; the
    /// rest waits for its newline.
    pub(crate) fn write(&mut self, stream: u8, data: &[u8]) {
        let at = SystemTime::now();
        let now = timefmt::rfc3339_nano(at);
        let mut buf = std::mem::take(&mut self.partial[Self::slot(stream)]);
        buf.extend_from_slice(data);
        // Entries are batched into one write, but the size limit is checked per
        // entry (as json-file does), so a burst of output still rotates on time.
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let end = match buf[start..].iter().position(|b| *b == b'\n') {
                Some(pos) => start + pos + 1,
                None if buf.len() - start >= MAX_PARTIAL => start + MAX_PARTIAL,
                None => break,
            };
            let before = out.len();
            entry(&mut out, &buf[start..end], stream, &now);
            self.send_remote(&buf[start..end], stream, at);
            if self.would_rotate(out.len()) && before > 0 {
                let next = out.split_off(before);
                self.append(&out);
                out = next;
            }
            start = end;
        }
        buf.drain(..start);
        self.partial[Self::slot(stream)] = buf;
        if !out.is_empty() {
            self.append(&out);
        }
    }

    fn would_rotate(&self, pending: usize) -> bool {
        self.rotate
            .is_some_and(|(max, _)| self.size > 0 && self.size + pending as u64 > max)
            || self
                .rotate
                .is_some_and(|(max, _)| self.size == 0 && pending as u64 > max)
    }

    /// Writes what is left of a stream when it ends without a newline.
    pub(crate) fn flush_partial(&mut self, stream: u8) {
        let buf = std::mem::take(&mut self.partial[Self::slot(stream)]);
        if !buf.is_empty() {
            let mut out = Vec::new();
            let at = SystemTime::now();
            entry(&mut out, &buf, stream, &timefmt::rfc3339_nano(at));
            if let Some(f) = self.file.as_mut() {
                let _ = f.write_all(&out);
            }
            if let Some(r) = self.remote.as_mut() {
                r.send(&buf, stream != STREAM_STDOUT, at, false);
            }
        }
    }

    /// One entry to the remote driver: the line without its newline; a piece of
    /// a long line is marked partial.
    fn send_remote(&mut self, piece: &[u8], stream: u8, at: SystemTime) {
        let Some(r) = self.remote.as_mut() else {
            return;
        };
        let (line, partial) = match piece.strip_suffix(b"\n") {
            Some(l) => (l, false),
            None => (piece, true),
        };
        r.send(line, stream != STREAM_STDOUT, at, partial);
    }

    /// The container ended: what the remote driver still has queued is sent
    /// (for a few seconds at most).
    pub(crate) fn finish(self) {
        if let Some(r) = self.remote {
            r.finish();
        }
    }
}

fn entry(out: &mut Vec<u8>, line: &[u8], stream: u8, time: &str) {
    out.extend_from_slice(b"{\"log\":\"");
    escape_into(out, &String::from_utf8_lossy(line));
    out.extend_from_slice(if stream == STREAM_STDOUT {
        b"\",\"stream\":\"stdout\",\"time\":\""
    } else {
        b"\",\"stream\":\"stderr\",\"time\":\""
    });
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::shimproto::STREAM_STDERR;

    #[test]
    fn lines_are_cut_at_newlines_and_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut l = JsonFileLog::open(Some(&p), None, false, None).unwrap();
        l.write(STREAM_STDOUT, b"hel");
        l.write(STREAM_STDOUT, b"lo \"x\"\nsecond");
        l.write(STREAM_STDERR, b"oops\t\x01\n");
        l.flush_partial(STREAM_STDOUT);
        let text = std::fs::read_to_string(&p).unwrap();
        let v: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["log"], "hello \"x\"\n");
        assert_eq!(v[0]["stream"], "stdout");
        assert_eq!(v[1]["log"], "oops\t\u{1}\n");
        assert_eq!(v[1]["stream"], "stderr");
        assert_eq!(v[2]["log"], "second");
    }

    #[test]
    fn a_burst_still_rotates_per_entry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut l = JsonFileLog::open(Some(&p), Some((300, 3)), false, None).unwrap();
        let burst: String = (0..50).map(|i| format!("line {i}\n")).collect();
        l.write(STREAM_STDOUT, burst.as_bytes());
        for e in std::fs::read_dir(dir.path()).unwrap() {
            assert!(e.unwrap().metadata().unwrap().len() <= 300);
        }
        assert!(std::fs::read_to_string(&p).unwrap().contains("line 49"));
    }

    /// Fifty lines through a log rotated at 300 bytes into at most 3 files: the
    /// directory and the sorted names of what is in it.
    fn fifty_lines_rotated(compress: bool) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut l = JsonFileLog::open(Some(&p), Some((300, 3)), compress, None).unwrap();
        for i in 0..50 {
            l.write(STREAM_STDOUT, format!("line {i}\n").as_bytes());
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        (dir, names)
    }

    #[test]
    fn compressed_rotation() {
        let (dir, names) = fifty_lines_rotated(true);
        assert_eq!(names, ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]);
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(
                std::fs::File::open(dir.path().join("c-json.log.1.gz")).unwrap(),
            ),
            &mut text,
        )
        .unwrap();
        assert!(text.contains("\"stream\":\"stdout\""), "{text}");
    }

    #[test]
    fn rotation_keeps_at_most_max_files() {
        let (dir, names) = fifty_lines_rotated(false);
        let p = dir.path().join("c-json.log");
        assert_eq!(names, ["c-json.log", "c-json.log.1", "c-json.log.2"]);
        for n in &names {
            assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() <= 300);
        }
        let last = std::fs::read_to_string(&p).unwrap();
        assert!(
            last.contains("line 49"),
            "the newest lines are in the current file"
        );
    }
}
