//! A userland TCP proxy, the way docker-proxy forwards a published port: accept on
//! LISTEN, connect to TARGET, copy both ways. Only for bench/network.py, which
//! compares it with berth's nftables DNAT. `tcp-proxy LISTEN TARGET`

use std::net::{Shutdown, TcpListener, TcpStream};

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, target) = match args.as_slice() {
        [_, l, t] => (l.clone(), t.clone()),
        _ => {
            eprintln!("usage: tcp-proxy LISTEN_ADDR TARGET_ADDR");
            std::process::exit(2);
        }
    };
    let l = TcpListener::bind(&listen).expect("binding");
    for conn in l.incoming().flatten() {
        let target = target.clone();
        std::thread::spawn(move || {
            let Ok(up) = TcpStream::connect(&target) else {
                let _ = conn.shutdown(Shutdown::Both);
                return;
            };
            let _ = conn.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let (c2, u2) = (
                conn.try_clone().expect("clone"),
                up.try_clone().expect("clone"),
            );
            let t = std::thread::spawn(move || pipe(c2, u2));
            pipe(up, conn);
            let _ = t.join();
        });
    }
}
