//! The shim's port proxy: a port published on IPv6 for a container that has only
//! IPv4 cannot be NATed, so the shim, which holds the listening socket anyway,
//! forwards what arrives on it to the container, as Docker's userland proxy does.
//! Plain byte copying between two sockets of the host's network namespace: nothing
//! from the peer is interpreted. The threads start after the container's process
//! exists and end with the shim.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a UDP flow without traffic is remembered (Docker's proxy: 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);
/// Connecting to the container gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `socket` (listening TCP or bound UDP) towards `target` on threads of
/// its own.
pub fn serve(socket: OwnedFd, proto: &str, target: SocketAddr) -> io::Result<()> {
    match proto {
        "tcp" => {
            let l = TcpListener::from(socket);
            std::thread::Builder::new()
                .name("proxy-tcp".into())
                .spawn(move || tcp_accept(l, target))?;
        }
        "udp" => {
            let s = UdpSocket::from(socket);
            std::thread::Builder::new()
                .name("proxy-udp".into())
                .spawn(move || udp_serve(s, target))?;
        }
        p => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no proxy for protocol {p:?}"),
            ))
        }
    }
    Ok(())
}

fn tcp_accept(l: TcpListener, target: SocketAddr) {
    loop {
        let client = match l.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Out of descriptors or memory: wait instead of spinning.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let _ = std::thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || tcp_forward(client, target));
    }
}

fn tcp_forward(client: TcpStream, target: SocketAddr) {
    let Ok(up) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        return; // dropping the client closes it, as Docker's proxy does
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (Ok(client2), Ok(up2)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let back = std::thread::Builder::new()
        .name("proxy-back".into())
        .spawn(move || pipe(up2, client2));
    pipe(client, up);
    if let Ok(h) = back {
        let _ = h.join();
    }
}

/// Copies until `from` ends, then tells `to` no more is coming (half close).
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// One socket per client towards the container, so that replies find their way
/// back; flows idle for [`UDP_IDLE`] are forgotten.
fn udp_serve(front: UdpSocket, target: SocketAddr) {
    let flows: Arc<Mutex<std::collections::HashMap<SocketAddr, UdpSocket>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = match front.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let existing = flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .and_then(|s| s.try_clone().ok());
        let up = match existing {
            Some(s) => s,
            None => match udp_flow(&front, client, target, &flows) {
                Ok(s) => s,
                Err(_) => continue,
            },
        };
        let _ = up.send(&buf[..n]);
    }
}

fn udp_flow(
    front: &UdpSocket,
    client: SocketAddr,
    target: SocketAddr,
    flows: &Arc<Mutex<std::collections::HashMap<SocketAddr, UdpSocket>>>,
) -> io::Result<UdpSocket> {
    let any: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let up = UdpSocket::bind(any)?;
    up.connect(target)?;
    up.set_read_timeout(Some(UDP_IDLE))?;
    let (back_front, back_up) = (front.try_clone()?, up.try_clone()?);
    flows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(client, up.try_clone()?);
    let flows = flows.clone();
    std::thread::Builder::new()
        .name("proxy-udp-flow".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            // Replies go back to the client until the flow falls idle.
            while let Ok(n) = back_up.recv(&mut buf) {
                let _ = back_front.send_to(&buf[..n], client);
            }
            flows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&client);
        })?;
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn tcp_and_udp_are_forwarded_both_ways() {
        // A TCP echo server as the "container".
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = backend.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in backend.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut c = c;
                    let mut buf = Vec::new();
                    c.read_to_end(&mut buf).unwrap();
                    c.write_all(&buf).unwrap();
                });
            }
        });
        let front = TcpListener::bind("[::1]:0").unwrap();
        let port = front.local_addr().unwrap().port();
        serve(OwnedFd::from(front), "tcp", target).unwrap();
        let mut c = TcpStream::connect(("::1", port)).unwrap();
        c.write_all(b"through the proxy").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through the proxy");

        let backend = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = backend.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = backend.recv_from(&mut buf) {
                let _ = backend.send_to(&buf[..n], from);
            }
        });
        let front = UdpSocket::bind("[::1]:0").unwrap();
        let port = front.local_addr().unwrap().port();
        serve(OwnedFd::from(front), "udp", target).unwrap();
        let s = UdpSocket::bind("[::1]:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(b"datagram", ("::1", port)).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"datagram"[..], port));
        assert!(serve(
            OwnedFd::from(UdpSocket::bind("[::1]:0").unwrap()),
            "sctp",
            target
        )
        .is_err());
    }
}
