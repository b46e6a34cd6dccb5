//! Byte streams the services produce (tar archives, progress lines) go out as
//! chunks on a channel; the HTTP edge turns the channel into a response body.

use crate::error::ApiError;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Lets blocking code write a streamed response body.
pub struct ChannelWriter {
    pub tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Bytes>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::new(),
        }
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx.blocking_send(chunk).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
            })?;
        }
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

/// One line of Docker's JSON progress stream.
pub fn json_line(v: serde_json::Value) -> Bytes {
    let mut l = serde_json::to_vec(&v).expect("serialises");
    l.push(b'\n');
    Bytes::from(l)
}

/// The line that ends a progress stream with an error, in Docker's shape.
pub async fn error_line(tx: &mpsc::Sender<Bytes>, e: &ApiError) {
    let v = serde_json::json!({ "errorDetail": { "message": e.message }, "error": e.message });
    let _ = tx.send(json_line(v)).await;
}
