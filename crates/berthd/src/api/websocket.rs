//! `GET /containers/{id}/attach/ws`: an attach over a WebSocket (RFC 6455), as
//! dockerd serves it: the streams never multiplexed (stdout and stderr as they
//! come), binary frames from API 1.28 on (text frames before), and what the client
//! sends (text, binary or continuation frames) is the container's stdin.

use crate::api::http::{self, Call, Resp};
use crate::daemon::container::attach::Session;
use crate::error::{ApiError, ApiResult};
use base64::Engine as _;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha1::Digest as _;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// A client frame larger than this ends the connection.
const MAX_FRAME: u64 = 16 << 20;

const OP_CONT: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;

/// The `Sec-WebSocket-Accept` answer to a client's key.
pub fn accept_key(key: &str) -> String {
    let mut h = sha1::Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Checks the handshake, answers 101 and relays `session` over the frames.
pub fn respond(session: Session, call: &mut Call) -> ApiResult<Resp> {
    let header = |k: &str| {
        call.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if !header("Upgrade").eq_ignore_ascii_case("websocket") {
        return Err(ApiError::invalid(
            "websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Upgrade' header",
        ));
    }
    let key = header("Sec-WebSocket-Key");
    if key.is_empty() {
        return Err(ApiError::invalid(
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is missing or blank",
        ));
    }
    if header("Sec-WebSocket-Version") != "13" {
        return Err(ApiError::invalid(
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
        ));
    }
    let upgrade = call
        .upgrade
        .take()
        .ok_or_else(|| ApiError::invalid("websocket: the connection cannot be upgraded"))?;
    let binary = call
        .version
        .as_deref()
        .is_none_or(|v| berth_api::parse_version(v) >= berth_api::parse_version("1.28"));
    let tty = session.tty();
    tokio::spawn(async move {
        if let Ok(up) = upgrade.await {
            bridge(session, TokioIo::new(up), tty, binary).await;
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept_key(&key))
        .body(http::Body::Empty)
        .expect("valid response"))
}

/// One server frame (servers never mask).
fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | op);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n < 65536 => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Reads one client frame: (opcode, unmasked payload). None when the connection
/// ends or breaks the protocol (client frames must be masked).
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await.ok()?;
    let op = head[0] & 0x0f;
    if head[1] & 0x80 == 0 {
        return None;
    }
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return None;
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await.ok()?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await.ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((op, payload))
}

/// Takes the payloads out of a multiplexed stream (8-byte headers), keeping an
/// incomplete frame for later.
fn demux(buf: &mut Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 8 {
        let n = u32::from_be_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        if buf.len() - at - 8 < n {
            break;
        }
        out.extend_from_slice(&buf[at + 8..at + 8 + n]);
        at += 8 + n;
    }
    buf.drain(..at);
    out
}

async fn bridge<S: AsyncRead + AsyncWrite + Send + 'static>(
    session: Session,
    conn: S,
    tty: bool,
    binary: bool,
) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(session.relay(ours));
    let (mut tr, mut tw) = tokio::io::split(theirs);
    let (mut cr, cw) = tokio::io::split(conn);
    let cw = Arc::new(Mutex::new(cw));
    let data_op = if binary { OP_BINARY } else { OP_TEXT };
    let out_w = cw.clone();
    let output = async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut pending = Vec::new();
        while let Ok(n) = tr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let data = if tty {
                buf[..n].to_vec()
            } else {
                pending.extend_from_slice(&buf[..n]);
                demux(&mut pending)
            };
            if !data.is_empty()
                && out_w
                    .lock()
                    .await
                    .write_all(&frame(data_op, &data))
                    .await
                    .is_err()
            {
                return;
            }
        }
        // The output ended: a normal closure.
        let mut w = out_w.lock().await;
        let _ = w.write_all(&frame(OP_CLOSE, &1000u16.to_be_bytes())).await;
        let _ = w.shutdown().await;
    };
    let input = async move {
        while let Some((op, payload)) = read_frame(&mut cr).await {
            match op {
                OP_TEXT | OP_BINARY | OP_CONT if tw.write_all(&payload).await.is_err() => break,
                OP_PING => {
                    let _ = cw.lock().await.write_all(&frame(OP_PONG, &payload)).await;
                }
                OP_CLOSE => {
                    let _ = cw.lock().await.write_all(&frame(OP_CLOSE, &payload)).await;
                    break;
                }
                _ => {}
            }
        }
        // The client is done sending: the container's stdin sees its end.
        let _ = tw.shutdown().await;
    };
    tokio::join!(output, input);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        // The example of RFC 6455, section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn demux_keeps_an_incomplete_frame() {
        let mut b = vec![
            1, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c', 2, 0, 0, 0, 0, 0, 0, 2, b'x',
        ];
        assert_eq!(demux(&mut b), b"abc");
        assert_eq!(b.len(), 9);
        b.push(b'y');
        assert_eq!(demux(&mut b), b"xy");
        assert!(b.is_empty());
        assert_eq!(frame(OP_BINARY, &[0; 200])[..4], [0x82, 126, 0, 200]);
    }
}
