//! A UDP echo server for network tests, put into a test image (static binary):
//! `udp-echo PORT` answers every datagram with the same bytes.

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "7".into());
    let s = std::net::UdpSocket::bind(format!("0.0.0.0:{port}")).expect("binding");
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, peer)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], peer);
        }
    }
}
