//! Docker's remote log drivers through the real docker CLI: syslog (udp, tcp with
//! RFC 5424 framing, a unix datagram socket), GELF (udp, compressed and chunked;
//! tcp), fluentd (its forward protocol), each with a receiver the test runs on
//! loopback; `docker logs` reading the local cache (dual logging), `tag`
//! templates, `labels`/`env` attributes, and the refusals in Docker's words.

use berth_tests::{wait_until, Daemon};
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Datagrams received on a UDP socket of loopback.
fn udp_receiver() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = s.recv(&mut buf) {
            g.lock().unwrap().push(buf[..n].to_vec());
        }
    });
    (port, got)
}

/// Everything sent to a TCP listener of loopback, per connection.
fn tcp_receiver() -> (u16, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut c = c;
                let mut buf = [0u8; 8192];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    g.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (port, got)
}

fn texts(got: &Mutex<Vec<Vec<u8>>>) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect()
}

#[test]
fn syslog_over_udp_tcp_and_a_unix_socket() {
    let d = Daemon::start();
    d.load_busybox();
    // UDP, Docker's default format, a tag template and a facility.
    let (port, got) = udp_receiver();
    d.docker(&[
        "run",
        "--name",
        "sl",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=udp://127.0.0.1:{port}"),
        "--log-opt",
        "tag={{.Name}}/{{.ImageName}}",
        "--log-opt",
        "syslog-facility=local3",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ])
    .ok();
    wait_until("two datagrams", || got.lock().unwrap().len() >= 2);
    let t = texts(&got);
    let out = t
        .iter()
        .find(|m| m.ends_with("to-out"))
        .expect("stdout line");
    let err = t
        .iter()
        .find(|m| m.ends_with("to-err"))
        .expect("stderr line");
    // local3 (19) * 8 + info (6) / err (3); "<PRI>TIME HOST TAG[PID]: MSG".
    assert!(out.starts_with("<158>"), "{out}");
    assert!(err.starts_with("<155>"), "{err}");
    assert!(out.contains(" sl/busybox["), "{out}");
    // Dual logging: `docker logs` reads the local cache.
    let o = d.docker(&["logs", "sl"]);
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str()),
        ("to-out\n", "to-err\n")
    );

    // TCP with RFC 5424: octet counting ("LEN MSG").
    let (port, got) = tcp_receiver();
    d.run_rm(&[
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=tcp://127.0.0.1:{port}"),
        "--log-opt",
        "syslog-format=rfc5424micro",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two",
    ]);
    wait_until("two framed messages", || {
        String::from_utf8_lossy(&got.lock().unwrap()).contains("two")
    });
    let raw = String::from_utf8(got.lock().unwrap().clone()).unwrap();
    let mut rest = raw.as_str();
    let mut msgs = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        msgs.push(&tail[..len]);
        rest = &tail[len..];
    }
    assert_eq!(msgs.len(), 2, "{raw}");
    assert!(
        msgs[0].starts_with("<30>1 ") && msgs[0].ends_with(" - one"),
        "{raw}"
    );

    // A unix datagram socket of the test's own.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let s = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    d.run_rm(&[
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=unixgram://{}", path.display()),
        "busybox",
        "echo",
        "via-unix",
    ]);
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).unwrap();
    let m = String::from_utf8_lossy(&buf[..n]);
    assert!(m.starts_with("<30>") && m.ends_with("]: via-unix"), "{m}");

    // Nobody listening on TCP: the start fails, as with Docker.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = d.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=tcp://127.0.0.1:{closed}"),
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("failed to initialize logging driver"),
        "{o:?}"
    );
}

#[test]
fn gelf_over_udp_and_tcp() {
    let d = Daemon::start();
    d.load_busybox();
    let (port, got) = udp_receiver();
    d.run_rm(&[
        "--name",
        "gl",
        "--label",
        "tier=front",
        "-e",
        "REGION=north",
        "--log-driver",
        "gelf",
        "--log-opt",
        &format!("gelf-address=udp://127.0.0.1:{port}"),
        "--log-opt",
        "labels=tier",
        "--log-opt",
        "env=REGION",
        "busybox",
        "sh",
        "-c",
        // A short line, then one that compresses to more than a datagram.
        "echo short; head -c 6000 /dev/urandom | base64 -w0; echo",
    ]);
    wait_until("the datagrams", || got.lock().unwrap().len() >= 3);
    let datagrams = got.lock().unwrap().clone();
    // Chunked datagrams reassembled by message id, then gunzipped.
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut chunks: std::collections::BTreeMap<Vec<u8>, Vec<(u8, Vec<u8>)>> = Default::default();
    for dg in datagrams {
        if dg[..2] == [0x1e, 0x0f] {
            chunks
                .entry(dg[2..10].to_vec())
                .or_default()
                .push((dg[10], dg[12..].to_vec()));
        } else {
            messages.push(dg);
        }
    }
    assert_eq!(chunks.len(), 1, "the long line came in chunks");
    for (_, mut parts) in chunks {
        parts.sort();
        messages.push(parts.into_iter().flat_map(|(_, p)| p).collect());
    }
    let docs: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&m[..])
                .read_to_string(&mut s)
                .unwrap();
            serde_json::from_str(&s).unwrap()
        })
        .collect();
    let short = docs
        .iter()
        .find(|v| v["short_message"] == "short")
        .expect("short");
    assert_eq!(short["_container_name"], "gl");
    assert_eq!(short["_tier"], "front");
    assert_eq!(short["_REGION"], "north");
    assert_eq!(short["level"], 6);
    assert_eq!(short["version"], "1.1");
    let long = docs
        .iter()
        .find(|v| v["short_message"].as_str().is_some_and(|s| s.len() > 7000))
        .expect("the long line, whole");
    assert_eq!(long["_container_name"], "gl");

    // TCP: uncompressed JSON, each message ended by a NUL byte.
    let (port, got) = tcp_receiver();
    d.run_rm(&[
        "--log-driver",
        "gelf",
        "--log-opt",
        &format!("gelf-address=tcp://127.0.0.1:{port}"),
        "busybox",
        "sh",
        "-c",
        "echo first; echo second >&2",
    ]);
    wait_until("two messages", || {
        got.lock().unwrap().iter().filter(|b| **b == 0).count() >= 2
    });
    let raw = got.lock().unwrap().clone();
    let docs: Vec<serde_json::Value> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_slice(p).unwrap())
        .collect();
    assert_eq!(docs[0]["short_message"], "first");
    assert_eq!(docs[1]["short_message"], "second");
    assert_eq!(docs[1]["level"], 3);
    let o = d.docker(&["run", "--rm", "--log-driver", "gelf", "busybox", "true"]);
    assert!(
        o.stderr.contains("gelf-address is a required parameter"),
        "{o:?}"
    );
}

/// Just enough msgpack to read fluentd's forward messages back.
fn unpack(b: &[u8], i: &mut usize) -> serde_json::Value {
    let t = b[*i];
    *i += 1;
    let mut take = |n: usize| {
        let s = &b[*i..*i + n];
        *i += n;
        s.to_vec()
    };
    match t {
        0x90..=0x9f => {
            let n = (t & 0x0f) as usize;
            serde_json::Value::Array((0..n).map(|_| unpack(b, i)).collect())
        }
        0x80..=0x8f => {
            let n = (t & 0x0f) as usize;
            let mut m = serde_json::Map::new();
            for _ in 0..n {
                let k = unpack(b, i);
                let v = unpack(b, i);
                m.insert(k.as_str().unwrap().to_string(), v);
            }
            serde_json::Value::Object(m)
        }
        0xa0..=0xbf => {
            let n = (t & 0x1f) as usize;
            serde_json::json!(String::from_utf8(take(n)).unwrap())
        }
        0xd9 => {
            let n = take(1)[0] as usize;
            serde_json::json!(String::from_utf8(take(n)).unwrap())
        }
        0xcf => serde_json::json!(u64::from_be_bytes(take(8).try_into().unwrap())),
        0xd7 => {
            let e = take(9);
            serde_json::json!({"ext": e[0], "secs": u32::from_be_bytes(e[1..5].try_into().unwrap())})
        }
        other => panic!("msgpack type {other:#x} not expected here"),
    }
}

#[test]
fn fluentd_forward_protocol_and_the_cache() {
    let d = Daemon::start();
    d.load_busybox();
    let (port, got) = tcp_receiver();
    d.docker(&[
        "run",
        "--name",
        "fl",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &format!("fluentd-address=127.0.0.1:{port}"),
        "--log-opt",
        "tag=app.{{.Name}}",
        "--log-opt",
        "fluentd-sub-second-precision=true",
        "--log-opt",
        "mode=non-blocking",
        "--log-opt",
        "max-buffer-size=4m",
        "busybox",
        "sh",
        "-c",
        "echo alpha; echo beta >&2",
    ])
    .ok();
    wait_until("two records", || {
        String::from_utf8_lossy(&got.lock().unwrap()).contains("beta")
    });
    let raw = got.lock().unwrap().clone();
    let mut i = 0;
    let mut records = Vec::new();
    while i < raw.len() {
        records.push(unpack(&raw, &mut i));
    }
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0][0], "app.fl");
    assert_eq!(records[0][1]["ext"], 0, "EventTime");
    assert_eq!(records[0][2]["log"], "alpha");
    assert_eq!(records[0][2]["source"], "stdout");
    assert_eq!(records[0][2]["container_name"], "/fl");
    assert_eq!(records[1][2]["source"], "stderr");
    assert_eq!(d.docker(&["logs", "fl"]).stdout, "alpha\n");
    // Without the cache `docker logs` has nothing to read, as with Docker.
    let (port, _got) = tcp_receiver();
    d.docker(&[
        "run",
        "--name",
        "nocache",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &format!("fluentd-address=tcp://127.0.0.1:{port}"),
        "--log-opt",
        "cache-disabled=true",
        "busybox",
        "true",
    ])
    .ok();
    let o = d.docker(&["logs", "nocache"]);
    assert!(
        o.stderr
            .contains("configured logging driver does not support reading"),
        "{o:?}"
    );
    // fluentd-async: started although nothing listens yet.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.run_rm(&[
        "--log-driver",
        "fluentd",
        "--log-opt",
        &format!("fluentd-address=127.0.0.1:{closed}"),
        "--log-opt",
        "fluentd-async=true",
        "busybox",
        "true",
    ]);
    // Options refused with Docker's words; journald only where it runs.
    for (opts, word) in [
        (
            vec!["--log-driver", "syslog", "--log-opt", "max-size=1m"],
            "unknown log opt 'max-size' for syslog log driver",
        ),
        (
            vec!["--log-driver", "syslog", "--log-opt", "syslog-format=json"],
            "Invalid syslog format: json",
        ),
        (
            vec!["--log-driver", "fluentd", "--log-opt", "mode=sometimes"],
            "logging mode not supported: sometimes",
        ),
        (
            vec!["--log-driver", "syslog", "--log-opt", "tag={{.Nope}}"],
            "can't evaluate field Nope",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(opts.iter());
        a.extend(["busybox", "true"]);
        let o = d.docker(&a);
        assert_ne!(o.code, 0, "{opts:?}");
        assert!(o.stderr.contains(word), "{opts:?}: {o:?}");
    }
    let o = d.docker(&["run", "--rm", "--log-driver", "journald", "busybox", "true"]);
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        assert_eq!(o.code, 0, "{o:?}");
    } else {
        assert!(
            o.stderr.contains("journald is not enabled on this host"),
            "{o:?}"
        );
    }
    let o = d.docker(&["info", "--format", "{{json .Plugins.Log}}"]);
    assert!(
        o.ok().contains("\"fluentd\"") && o.stdout.contains("\"syslog\""),
        "{o:?}"
    );
}

/// The daemon's default driver and options reach containers.
#[test]
fn a_daemon_default_remote_driver() {
    let (port, got) = udp_receiver();
    let addr = format!("syslog-address=udp://127.0.0.1:{port}");
    let d = Daemon::start_with(&["--log-driver", "syslog", "--log-opt", &addr]);
    d.load_busybox();
    d.run_rm(&["busybox", "echo", "by-default"]);
    wait_until("the line", || {
        texts(&got).iter().any(|m| m.ends_with("by-default"))
    });
    let o = d.docker(&["info", "--format", "{{.LoggingDriver}}"]);
    assert_eq!(o.ok().trim(), "syslog");
}

/// syslog over `tcp+tls://` to a receiver that requires a client certificate of
/// its CA: with `syslog-tls-ca-cert`, `-cert` and `-key` the lines arrive (RFC 5424
/// framing); a receiver the given CA did not sign fails the handshake and so the
/// start; a certificate file that is not there is refused at once.
#[test]
fn syslog_over_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "syslog test CA");
    let ca = p.self_signed(&ca_key).unwrap();
    let issue = |name: &str, server: bool| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        if server {
            p.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())];
        } else {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(
            dir.path().join(format!("{name}-key.pem")),
            key.serialize_pem(),
        )
        .unwrap();
    };
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "another CA");
    std::fs::write(
        dir.path().join("other-ca.pem"),
        p.self_signed(&other_key).unwrap().pem(),
    )
    .unwrap();
    issue("server", true);
    issue("client", false);
    let f = |n: &str| dir.path().join(n).display().to_string();
    let config = berth_tls::server_config(
        &dir.path().join("server.pem"),
        &dir.path().join("server-key.pem"),
        Some(&dir.path().join("ca.pem")),
    )
    .unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let (g, config) = (g.clone(), config.clone());
            std::thread::spawn(move || {
                let conn = berth_tls::rustls::ServerConnection::new(config).unwrap();
                let mut s = berth_tls::rustls::StreamOwned::new(conn, c);
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    g.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    let d = Daemon::start();
    d.load_busybox();
    let addr = format!("syslog-address=tcp+tls://127.0.0.1:{port}");
    let ca_opt = format!("syslog-tls-ca-cert={}", f("ca.pem"));
    d.run_rm(&[
        "--log-driver",
        "syslog",
        "--log-opt",
        &addr,
        "--log-opt",
        &ca_opt,
        "--log-opt",
        &format!("syslog-tls-cert={}", f("client.pem")),
        "--log-opt",
        &format!("syslog-tls-key={}", f("client-key.pem")),
        "--log-opt",
        "syslog-format=rfc5424",
        "busybox",
        "echo",
        "over-tls",
    ]);
    wait_until("the line over TLS", || {
        String::from_utf8_lossy(&got.lock().unwrap()).contains("over-tls")
    });
    let raw = String::from_utf8(got.lock().unwrap().clone()).unwrap();
    let (len, msg) = raw.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "{raw}");
    assert!(
        msg.starts_with("<30>1 ") && msg.ends_with(" - over-tls"),
        "{raw}"
    );
    // A receiver whose certificate the given CA did not sign: the handshake
    // fails, and so does the start.
    let o = d.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &addr,
        "--log-opt",
        &format!("syslog-tls-ca-cert={}", f("other-ca.pem")),
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("failed to initialize logging driver"),
        "{o:?}"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &addr,
        "--log-opt",
        "syslog-tls-ca-cert=/nonexistent/ca.pem",
        "busybox",
        "true",
    ]);
    assert!(
        o.stderr
            .contains("syslog-tls-ca-cert: open /nonexistent/ca.pem"),
        "{o:?}"
    );
}
