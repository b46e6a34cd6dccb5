//! Docker's remote log drivers, as the shim sends each log line: syslog (RFC 3164
//! and 5424 formats over unix, udp or tcp), GELF (udp, compressed and chunked; tcp),
//! fluentd (its forward protocol in msgpack, over tcp or unix) and journald (its
//! native datagram protocol). berthd checked the options and rendered the tag.
//!
//! Lines go to a sender thread through a bounded channel: with `mode=blocking`
//! (Docker's default) a slow receiver holds the container's output, with
//! `mode=non-blocking` lines beyond `max-buffer-size` are dropped. The connection
//! is made before the container starts (a receiver that is not there fails the
//! start, as with Docker), except with `fluentd-async`.

use berth_runtime::spec::RemoteLog;
use berth_runtime::timefmt;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// GELF over UDP: chunks of at most this many bytes of payload.
const GELF_CHUNK: usize = 1420;

/// One log line (without its newline).
pub struct Msg {
    pub line: Vec<u8>,
    pub stderr: bool,
    pub time: SystemTime,
    /// A piece of a line longer than 16 KiB (more follows).
    pub partial: bool,
}

enum Conn {
    UnixDgram(UnixDatagram),
    UnixStream(UnixStream),
    Udp(UdpSocket),
    Tcp(TcpStream),
    /// berth-tls-relay, fed through its stdin.
    Relay(std::process::Child),
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Conn::Relay(c) = self {
            // Its stdin closes: it sends what it has and ends.
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

/// syslog over `tcp+tls://`: through berth-tls-relay, which holds the TLS
/// connection (the shim stays small); it says `ok` once the handshake is done, so
/// that a receiver that does not accept us fails the container's start.
fn tls_connect(spec: &RemoteLog, hostport: &str) -> io::Result<Conn> {
    use std::io::BufRead;
    let relay = spec
        .tls_relay
        .as_ref()
        .ok_or_else(|| io::Error::other("no berth-tls-relay given"))?;
    let mut cmd = std::process::Command::new(relay);
    cmd.arg(hostport);
    let opt = |k: &str| spec.options.get(k).filter(|v| !v.is_empty());
    if let Some(ca) = opt("syslog-tls-ca-cert") {
        cmd.args(["--ca", ca]);
    }
    if let (Some(c), Some(k)) = (opt("syslog-tls-cert"), opt("syslog-tls-key")) {
        cmd.args(["--cert", c, "--key", k]);
    }
    if opt("syslog-tls-skip-verify").is_some_and(|v| v == "true") {
        cmd.arg("--skip-verify");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut first)?;
    if first.trim() != "ok" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(
            first.trim().trim_start_matches("error: ").to_string(),
        ));
    }
    Ok(Conn::Relay(child))
}

impl Conn {
    fn open(spec: &RemoteLog) -> io::Result<Conn> {
        let address = spec.address.as_str();
        let (scheme, rest) = address
            .split_once("://")
            .ok_or_else(|| io::Error::other(format!("bad address {address}")))?;
        Ok(match scheme {
            "unixgram" => {
                let s = UnixDatagram::unbound()?;
                s.connect(rest)?;
                Conn::UnixDgram(s)
            }
            // syslog's unix://: a datagram socket, else a stream one (as Docker).
            "unix" => match UnixDatagram::unbound().and_then(|s| s.connect(rest).map(|_| s)) {
                Ok(s) => Conn::UnixDgram(s),
                Err(_) => Conn::UnixStream(UnixStream::connect(rest)?),
            },
            "udp" => {
                let addr = resolve(rest)?;
                let any: std::net::SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(any)?;
                s.connect(addr)?;
                Conn::Udp(s)
            }
            "tcp" => {
                let s = TcpStream::connect_timeout(&resolve(rest)?, DIAL_TIMEOUT)?;
                s.set_write_timeout(Some(DIAL_TIMEOUT))?;
                Conn::Tcp(s)
            }
            "tcp+tls" => tls_connect(spec, rest)?,
            s => return Err(io::Error::other(format!("unsupported scheme {s}"))),
        })
    }

    fn is_stream(&self) -> bool {
        matches!(self, Conn::Tcp(_) | Conn::UnixStream(_) | Conn::Relay(_))
    }

    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Conn::UnixDgram(s) => s.send(b).map(drop),
            Conn::Udp(s) => s.send(b).map(drop),
            Conn::UnixStream(s) => s.write_all(b),
            Conn::Tcp(s) => s.write_all(b),
            Conn::Relay(c) => match c.stdin.as_mut() {
                Some(w) => w.write_all(b),
                None => Err(io::Error::other("the TLS relay has ended")),
            },
        }
    }
}

fn resolve(hostport: &str) -> io::Result<std::net::SocketAddr> {
    hostport
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("no address for {hostport}")))
}

/// The encoder and its connection.
struct Sink {
    spec: RemoteLog,
    conn: Option<Conn>,
    pid: u32,
    gelf_id: u64,
}

impl Sink {
    fn connect(&mut self) -> io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.spec)?);
        }
        Ok(())
    }

    /// Sends one line; a stream connection that broke is made again once.
    fn send(&mut self, m: &Msg) -> io::Result<()> {
        let frames = self.encode(m)?;
        for attempt in 0..2 {
            self.connect()?;
            let conn = self.conn.as_mut().expect("connected");
            let r = frames.iter().try_for_each(|f| conn.send(f));
            match r {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 0 && conn.is_stream() => {
                    let _ = e;
                    self.conn = None;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn encode(&mut self, m: &Msg) -> io::Result<Vec<Vec<u8>>> {
        let stream = self.conn.as_ref().is_none_or(Conn::is_stream);
        Ok(match self.spec.driver.as_str() {
            "syslog" => vec![syslog(&self.spec, m, self.pid, stream)],
            "gelf" => {
                let body = gelf(&self.spec, m);
                if self.spec.address.starts_with("tcp://") {
                    let mut b = body;
                    b.push(0);
                    vec![b]
                } else {
                    self.gelf_id = self.gelf_id.wrapping_add(1);
                    gelf_chunks(
                        compress(&self.spec, &body)?,
                        self.gelf_id ^ u64::from(self.pid) << 32,
                    )
                }
            }
            "fluentd" => vec![fluentd(&self.spec, m)],
            "journald" => vec![journald(&self.spec, m)],
            d => return Err(io::Error::other(format!("no log driver {d}"))),
        })
    }
}

/// The sending side the shim's loop holds.
pub struct Remote {
    tx: Option<SyncSender<Msg>>,
    pending: Arc<AtomicU64>,
    non_blocking: bool,
    max_buffer: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Connects (unless fluentd-async), before the container starts. The sending
/// thread starts with [`Prepared::start`], after the container's process exists.
pub struct Prepared(Sink);

pub fn prepare(spec: &RemoteLog) -> io::Result<Prepared> {
    let mut sink = Sink {
        spec: spec.clone(),
        conn: None,
        pid: std::process::id(),
        gelf_id: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
    };
    let lazy = spec.driver == "fluentd"
        && ["fluentd-async", "fluentd-async-connect"]
            .iter()
            .any(|k| spec.options.get(*k).is_some_and(|v| v == "true"));
    if !lazy {
        sink.connect()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", spec.address)))?;
    }
    Ok(Prepared(sink))
}

impl Prepared {
    pub fn start(self) -> io::Result<Remote> {
        let (tx, rx) = sync_channel::<Msg>(1024);
        let pending = Arc::new(AtomicU64::new(0));
        let (non_blocking, max_buffer) = (self.0.spec.non_blocking, self.0.spec.max_buffer);
        let p2 = pending.clone();
        let mut sink = self.0;
        let thread = std::thread::Builder::new()
            .name("log-sender".into())
            .spawn(move || run(&mut sink, rx, &p2))?;
        Ok(Remote {
            tx: Some(tx),
            pending,
            non_blocking,
            max_buffer,
            thread: Some(thread),
        })
    }
}

fn run(sink: &mut Sink, rx: Receiver<Msg>, pending: &AtomicU64) {
    let mut failures = 0u64;
    for m in rx {
        pending.fetch_sub(m.line.len() as u64, Ordering::Relaxed);
        if let Err(e) = sink.send(&m) {
            failures += 1;
            // Said once, then every thousandth time: a dead receiver must not
            // fill the shim's stderr.
            if failures == 1 || failures.is_multiple_of(1000) {
                eprintln!(
                    "berth-shim: {} log driver: {e} ({failures} lines lost)",
                    sink.spec.driver
                );
            }
        }
    }
}

impl Remote {
    pub fn send(&self, m: Msg) {
        let Some(tx) = &self.tx else { return };
        let n = m.line.len() as u64;
        if self.non_blocking {
            if self.pending.load(Ordering::Relaxed) + n > self.max_buffer {
                return; // dropped, as Docker's ring buffer drops
            }
            self.pending.fetch_add(n, Ordering::Relaxed);
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(m) {
                self.pending.fetch_sub(n, Ordering::Relaxed);
            }
        } else {
            self.pending.fetch_add(n, Ordering::Relaxed);
            let _ = tx.send(m);
        }
    }

    /// Sends what is queued, waiting at most `limit`.
    pub fn finish(mut self, limit: Duration) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + limit;
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn syslog(spec: &RemoteLog, m: &Msg, pid: u32, stream: bool) -> Vec<u8> {
    let facility: u32 = spec
        .options
        .get("syslog-facility")
        .and_then(|f| f.parse().ok())
        .unwrap_or(3);
    let pri = facility * 8 + if m.stderr { 3 } else { 6 };
    let msg = String::from_utf8_lossy(&m.line);
    let host = &spec.hostname;
    let tag = &spec.tag;
    let format = spec.options.get("syslog-format").map_or("", String::as_str);
    let unix = spec.address.starts_with("unix");
    let text = match format {
        "rfc5424" | "rfc5424micro" => {
            let digits = if format == "rfc5424micro" { 6 } else { 0 };
            let ts = timefmt::rfc3339_digits(m.time, digits);
            format!("<{pri}>1 {ts} {host} {tag} {pid} {tag} - {msg}")
        }
        "rfc3164" => format!(
            "<{pri}>{} {host} {tag}[{pid}]: {msg}",
            timefmt::syslog_stamp(m.time)
        ),
        _ if unix => format!(
            "<{pri}>{} {tag}[{pid}]: {msg}",
            timefmt::syslog_stamp(m.time)
        ),
        _ => format!(
            "<{pri}>{} {host} {tag}[{pid}]: {msg}",
            timefmt::rfc3339_digits(m.time, 0)
        ),
    };
    if !stream {
        return text.into_bytes();
    }
    // Over a stream: RFC 5425's octet counting for the 5424 formats, else one
    // message per line.
    if format.starts_with("rfc5424") {
        format!("{} {text}", text.len()).into_bytes()
    } else {
        format!("{text}\n").into_bytes()
    }
}

fn gelf(spec: &RemoteLog, m: &Msg) -> Vec<u8> {
    let t = m.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut v = serde_json::json!({
        "version": "1.1",
        "host": spec.hostname,
        "short_message": String::from_utf8_lossy(&m.line),
        "timestamp": t.as_secs_f64(),
        "level": if m.stderr { 3 } else { 6 },
        "_container_id": spec.container_id,
        "_container_name": spec.container_name.trim_start_matches('/'),
        "_image_id": spec.image_id,
        "_image_name": spec.image_name,
        "_command": spec.command,
        "_tag": spec.tag,
        "_created": spec.created,
    });
    for (k, val) in &spec.extra {
        v[format!("_{k}")] = serde_json::json!(val);
    }
    serde_json::to_vec(&v).expect("serialises")
}

fn compress(spec: &RemoteLog, body: &[u8]) -> io::Result<Vec<u8>> {
    let level = spec
        .options
        .get("gelf-compression-level")
        .and_then(|l| l.parse::<i32>().ok())
        .filter(|l| *l >= 0)
        .map_or(flate2::Compression::default(), |l| {
            flate2::Compression::new(l as u32)
        });
    match spec
        .options
        .get("gelf-compression-type")
        .map_or("gzip", String::as_str)
    {
        "none" => Ok(body.to_vec()),
        "zlib" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(body)?;
            e.finish()
        }
        _ => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(body)?;
            e.finish()
        }
    }
}

/// GELF's UDP chunking: one datagram when it fits, else chunks with the magic
/// bytes, the message id, the sequence number and the count (at most 128).
fn gelf_chunks(body: Vec<u8>, id: u64) -> Vec<Vec<u8>> {
    if body.len() <= GELF_CHUNK {
        return vec![body];
    }
    let chunks: Vec<&[u8]> = body.chunks(GELF_CHUNK).take(128).collect();
    let count = chunks.len() as u8;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut d = Vec::with_capacity(12 + c.len());
            d.extend_from_slice(&[0x1e, 0x0f]);
            d.extend_from_slice(&id.to_be_bytes());
            d.push(i as u8);
            d.push(count);
            d.extend_from_slice(c);
            d
        })
        .collect()
}

/// msgpack, the little of it fluentd's forward protocol needs.
mod msgpack {
    pub fn str(out: &mut Vec<u8>, s: &[u8]) {
        let n = s.len();
        if n < 32 {
            out.push(0xa0 | n as u8);
        } else if n < 256 {
            out.extend_from_slice(&[0xd9, n as u8]);
        } else if n < 65536 {
            out.push(0xda);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            out.push(0xdb);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        out.extend_from_slice(s);
    }

    pub fn map_header(out: &mut Vec<u8>, n: usize) {
        if n < 16 {
            out.push(0x80 | n as u8);
        } else {
            out.push(0xde);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }

    pub fn uint(out: &mut Vec<u8>, v: u64) {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// fluentd's EventTime: ext type 0, seconds and nanoseconds.
    pub fn event_time(out: &mut Vec<u8>, secs: u32, nanos: u32) {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
    }
}

fn fluentd(spec: &RemoteLog, m: &Msg) -> Vec<u8> {
    let t = m.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = Vec::with_capacity(128 + m.line.len());
    out.push(0x93); // [tag, time, record]
    msgpack::str(&mut out, spec.tag.as_bytes());
    if spec
        .options
        .get("fluentd-sub-second-precision")
        .is_some_and(|v| v == "true")
    {
        msgpack::event_time(&mut out, t.as_secs() as u32, t.subsec_nanos());
    } else {
        msgpack::uint(&mut out, t.as_secs());
    }
    let mut fields: Vec<(&str, &[u8])> = vec![
        ("container_id", spec.container_id.as_bytes()),
        ("container_name", spec.container_name.as_bytes()),
        ("source", if m.stderr { b"stderr" } else { b"stdout" }),
        ("log", &m.line),
    ];
    if m.partial {
        fields.push(("partial_message", b"true"));
    }
    for (k, v) in &spec.extra {
        fields.push((k, v.as_bytes()));
    }
    msgpack::map_header(&mut out, fields.len());
    for (k, v) in fields {
        msgpack::str(&mut out, k.as_bytes());
        msgpack::str(&mut out, v);
    }
    out
}

fn journald(spec: &RemoteLog, m: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |k: &str, v: &[u8]| {
        if v.contains(&b'\n') {
            out.extend_from_slice(k.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v);
            out.push(b'\n');
        } else {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v);
            out.push(b'\n');
        }
    };
    field("MESSAGE", &m.line);
    field("PRIORITY", if m.stderr { b"3" } else { b"6" });
    field("CONTAINER_ID", &spec.container_id.as_bytes()[..12]);
    field("CONTAINER_ID_FULL", spec.container_id.as_bytes());
    field(
        "CONTAINER_NAME",
        spec.container_name.trim_start_matches('/').as_bytes(),
    );
    field("CONTAINER_TAG", spec.tag.as_bytes());
    field("IMAGE_NAME", spec.image_name.as_bytes());
    field("SYSLOG_IDENTIFIER", spec.tag.as_bytes());
    if m.partial {
        field("CONTAINER_PARTIAL_MESSAGE", b"true");
    }
    for (k, v) in &spec.extra {
        // Journal field names: upper case letters, digits and underscores.
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        field(name.trim_start_matches('_'), v.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(driver: &str, address: &str) -> RemoteLog {
        RemoteLog {
            driver: driver.into(),
            address: address.into(),
            tag: "web-tag".into(),
            container_id: "0123456789abcdef".repeat(4),
            container_name: "/web".into(),
            image_name: "busybox".into(),
            hostname: "host1".into(),
            extra: vec![("tier".into(), "front".into())],
            max_buffer: 1 << 20,
            ..Default::default()
        }
    }

    fn msg(line: &str) -> Msg {
        Msg {
            line: line.as_bytes().to_vec(),
            stderr: false,
            time: UNIX_EPOCH + Duration::new(1_704_164_645, 123_456_789),
            partial: false,
        }
    }

    #[test]
    fn syslog_formats() {
        let mut s = spec("syslog", "udp://127.0.0.1:514");
        s.options.insert("syslog-facility".into(), "16".into());
        let m = msg("hello");
        assert_eq!(
            String::from_utf8(syslog(&s, &m, 42, false)).unwrap(),
            "<134>2024-01-02T03:04:05Z host1 web-tag[42]: hello"
        );
        s.options
            .insert("syslog-format".into(), "rfc5424micro".into());
        let text = "<134>1 2024-01-02T03:04:05.123456Z host1 web-tag 42 web-tag - hello";
        assert_eq!(
            String::from_utf8(syslog(&s, &m, 42, true)).unwrap(),
            format!("{} {text}", text.len())
        );
        s.options.insert("syslog-format".into(), "rfc3164".into());
        assert_eq!(
            String::from_utf8(syslog(&s, &m, 42, true)).unwrap(),
            "<134>Jan  2 03:04:05 host1 web-tag[42]: hello\n"
        );
    }

    #[test]
    fn gelf_is_compressed_and_chunked() {
        let s = spec("gelf", "udp://127.0.0.1:12201");
        let body = gelf(&s, &msg("hi"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["short_message"], "hi");
        assert_eq!(v["_container_name"], "web");
        assert_eq!(v["_tier"], "front");
        assert_eq!(v["level"], 6);
        let gz = compress(&s, &body).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let big: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let chunks = gelf_chunks(big.clone(), 7);
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c[..2] == [0x1e, 0x0f] && c[11] == 4));
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c[12..].to_vec()).collect();
        assert_eq!(joined, big);
    }

    #[test]
    fn fluentd_and_journald_encode() {
        let s = spec("fluentd", "tcp://127.0.0.1:24224");
        let b = fluentd(&s, &msg("hi"));
        assert_eq!(b[0], 0x93);
        assert_eq!(&b[1..9], b"\xa7web-tag");
        assert_eq!(b[9], 0xcf);
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains("container_name") && text.contains("/web") && text.contains("tier"));
        let j = journald(&spec("journald", "unixgram:///x"), &msg("two\nlines"));
        let text = String::from_utf8_lossy(&j);
        assert!(text.starts_with("MESSAGE\n"), "{text}");
        assert!(text.contains("CONTAINER_NAME=web\n") && text.contains("TIER=front\n"));
    }
}
