//! berth-sidecar: what only some containers need, in a process of its own, so that
//! the shim every container has stays small. Its shim starts it and feeds it
//! through its stdin; it ends when that pipe does (the container ended, or the
//! shim is gone).
//!
//!   berth-sidecar log SPEC.json     a remote log driver (remote.rs): says `ok` (or
//!                                   the error) on stdout once connected, then
//!                                   sends the log lines framed on stdin
//!   berth-sidecar proxy FD,PROTO,ADDR...   serves inherited port sockets (proxy.rs)

#[path = "proxy.rs"]
mod proxy;
#[path = "remote.rs"]
mod remote;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

/// One frame of the shim's log pipe: flags (1: stderr, 2: a piece of a longer
/// line, 4: the next frame goes on), seconds, nanoseconds, length, then bytes.
const HEADER: usize = 17;

fn log(spec_path: &str) -> ExitCode {
    let spec: Result<berth_runtime::spec::Spec, String> = std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
    let prepared = spec.and_then(|s| {
        let r = s.log_remote.ok_or("the spec has no remote log driver")?;
        remote::prepare(&r).map_err(|e| e.to_string())
    });
    let remote = match prepared.and_then(|p| p.start().map_err(|e| e.to_string())) {
        Ok(r) => r,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!("ok");
    let _ = std::io::stdout().flush();
    let mut stdin = std::io::stdin().lock();
    let mut head = [0u8; HEADER];
    let mut line = Vec::new();
    while stdin.read_exact(&mut head).is_ok() {
        let secs = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
        let nanos = u32::from_le_bytes(head[9..13].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(head[13..17].try_into().expect("4 bytes")) as usize;
        let start = line.len();
        line.resize(start + len, 0);
        if stdin.read_exact(&mut line[start..]).is_err() {
            break;
        }
        if head[0] & 4 != 0 {
            continue; // the line goes on in the next frame
        }
        remote.send(remote::Msg {
            line: std::mem::take(&mut line),
            stderr: head[0] & 1 != 0,
            time: UNIX_EPOCH + Duration::new(secs, nanos),
            partial: head[0] & 2 != 0,
        });
    }
    remote.finish(Duration::from_secs(5));
    ExitCode::SUCCESS
}

fn proxies(args: &[String]) -> ExitCode {
    for a in args {
        let mut parts = a.splitn(3, ',');
        let (Some(fd), Some(proto), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
            eprintln!("berth-sidecar: bad proxy {a:?}");
            return ExitCode::from(2);
        };
        let started = fd
            .parse::<i32>()
            .map_err(|e| e.to_string())
            .and_then(|fd| berth_runtime::sys::take_inherited_fd(fd).map_err(|e| e.to_string()))
            .and_then(|fd| {
                let target = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
                proxy::serve(fd, proto, target).map_err(|e| e.to_string())
            });
        if let Err(e) = started {
            eprintln!("berth-sidecar: proxy {a}: {e}");
        }
    }
    // Until the shim's pipe ends.
    let mut sink = [0u8; 64];
    while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("log") if args.len() == 2 => log(&args[1]),
        Some("proxy") => proxies(&args[1..]),
        _ => {
            eprintln!("usage: berth-sidecar log SPEC.json | proxy FD,PROTO,ADDR...");
            ExitCode::from(2)
        }
    }
}
