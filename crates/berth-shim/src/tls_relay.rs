//! berth-tls-relay: a log driver's TLS connection (syslog over `tcp+tls://`) in a
//! process of its own, so that the shim every container has stays small: only
//! containers logging over TLS start one. It connects and completes the handshake,
//! says `ok` (or the error) on stdout, then copies stdin to the connection until
//! stdin ends.
//!
//!   berth-tls-relay HOST:PORT [--ca FILE] [--cert FILE --key FILE] [--skip-verify]

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn connect(
    args: &[String],
) -> Result<berth_tls::rustls::StreamOwned<berth_tls::rustls::ClientConnection, TcpStream>, String>
{
    let hostport = args
        .first()
        .ok_or("usage: berth-tls-relay HOST:PORT [options]")?;
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|s| Path::new(s.as_str()))
    };
    let client = match (opt("--cert"), opt("--key")) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let config = berth_tls::files_client_config(
        opt("--ca"),
        client,
        args.iter().any(|a| a == "--skip-verify"),
    )
    .map_err(|e| e.to_string())?;
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport.as_str(), |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = berth_tls::rustls::pki_types::ServerName::try_from(host)
        .map_err(|e| format!("server name: {e}"))?;
    let mut conn =
        berth_tls::rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("no address for {hostport}"))?;
    let mut tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(berth_tls::rustls::StreamOwned::new(conn, tcp))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut tls = match connect(&args) {
        Ok(s) => s,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!("ok");
    let _ = std::io::stdout().flush();
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
            return ExitCode::from(1);
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    ExitCode::SUCCESS
}
