//! Attach-like answers (container attach, exec start): with an upgrade, 101 and the
//! daemon's relay on the hijacked connection; without one (old clients), a
//! streamed body, which can carry no input.

use crate::api::http::{self, Resp};
use crate::daemon::container::attach::Session;
use bytes::Bytes;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

pub fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

pub fn respond(session: Session, upgrade: Option<hyper::upgrade::OnUpgrade>) -> Resp {
    let tty = session.tty();
    match upgrade {
        Some(on_upgrade) => {
            tokio::spawn(async move {
                if let Ok(up) = on_upgrade.await {
                    session.relay(TokioIo::new(up)).await;
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("Content-Type", content_type(tty))
                .header("Connection", "Upgrade")
                .header("Upgrade", "tcp")
                .body(http::Body::Empty)
                .expect("valid response")
        }
        None => {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            tokio::spawn(session.relay(ours));
            tokio::spawn(async move {
                let (mut r, _w) = tokio::io::split(theirs);
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            });
            http::stream(StatusCode::OK, content_type(tty), rx)
        }
    }
}
