//! A load generator for the list benchmark (bench/list.py): GET requests over a
//! unix socket, HTTP/1.1 keep-alive, one connection per client thread.
//!
//!   list-load SOCKET PATH CLIENTS SECONDS            throughput: requests/s
//!   list-load SOCKET PATH CLIENTS SECONDS RATE       latency at RATE requests/s
//!
//! At a fixed rate each request has its scheduled time and its latency is counted
//! from then (a slow answer delays the next ones, and that delay counts too).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn get(conn: &mut BufReader<UnixStream>, path: &str) -> std::io::Result<usize> {
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: berth\r\n\r\n").as_bytes())?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("answer: {line:?}")));
    }
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = 0;
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
            let mut buf = vec![0u8; n + 2];
            conn.read_exact(&mut buf)?;
            body += n;
            if n == 0 {
                break;
            }
        }
    } else {
        let n = length.ok_or_else(|| std::io::Error::other("no length"))?;
        let mut buf = vec![0u8; n];
        conn.read_exact(&mut buf)?;
        body = n;
    }
    Ok(body)
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        eprintln!("usage: list-load SOCKET PATH CLIENTS SECONDS [RATE]");
        std::process::exit(2);
    }
    let (sock, path) = (a[0].clone(), a[1].clone());
    let clients: usize = a[2].parse().expect("clients");
    let secs: f64 = a[3].parse().expect("seconds");
    let rate: Option<f64> = a.get(4).map(|r| r.parse().expect("rate"));
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (sock, path) = (sock.clone(), path.clone());
            std::thread::spawn(move || {
                let mut conn = BufReader::with_capacity(
                    256 * 1024,
                    UnixStream::connect(&sock).expect("connecting"),
                );
                let mut lat = Vec::new();
                let mut n = 0u64;
                let mut bytes = 0usize;
                // Each client's share of the rate, offset so they interleave.
                let interval = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
                let mut next = start
                    + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(i as f64 / clients as f64));
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                while Instant::now() < end {
                    if interval.is_some() {
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                    let scheduled = if interval.is_some() {
                        next
                    } else {
                        Instant::now()
                    };
                    bytes = get(&mut conn, &path).expect("request");
                    lat.push(scheduled.elapsed());
                    n += 1;
                    if let Some(iv) = interval {
                        next += iv;
                    }
                }
                (n, lat, bytes)
            })
        })
        .collect();
    let mut total = 0;
    let mut lat = Vec::new();
    let mut bytes = 0;
    for h in handles {
        let (n, l, b) = h.join().expect("client");
        total += n;
        lat.extend(l);
        bytes = b;
    }
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "{{\"requests\": {total}, \"per_second\": {:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}, \"body_bytes\": {bytes}}}",
        total as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}
