//! Attaching a client to a container's or an exec's stdio: what to relay, the
//! logs replayed first, the detach keys, and the relay itself over any byte
//! stream the front end hands over (a hijacked HTTP connection, or a pipe when
//! the client cannot be upgraded).

use super::detach;
use super::logs::LogOptions;
use super::record::Exec;
use super::start::AttachSource;
use super::Containers;
use crate::error::ApiResult;
use berth_runtime::shimproto::{
    input_frame, IN_CLOSE, IN_DATA, WANT_STDERR, WANT_STDIN, WANT_STDOUT,
};
use bytes::Bytes;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// `POST /containers/{id}/attach`, as asked.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Replay the logs first.
    pub logs: bool,
    /// Follow the live streams.
    pub stream: bool,
    pub detach_keys: Option<String>,
    /// The client's connection can carry input (it was upgraded).
    pub duplex: bool,
}

impl Containers {
    /// Sets up an attach: registered before the client gets its answer, so that
    /// a start the client sends next cannot miss it.
    pub async fn attach(&self, key: &str, req: AttachRequest) -> ApiResult<Session> {
        let c = self.get(key)?;
        let (tty, open_stdin, stdin_once) = {
            let r = c.rec();
            (r.config.tty, r.config.open_stdin, r.config.stdin_once)
        };
        let keys = match req.detach_keys.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => detach::parse(k)?,
            None => detach::DEFAULT.to_vec(),
        };
        let mut want = 0;
        if req.stdout {
            want |= WANT_STDOUT;
        }
        if req.stderr {
            want |= WANT_STDERR;
        }
        // As in Docker, stdin is attached only to a container created with it
        // open, and only over a connection that can carry it.
        if req.stdin && open_stdin && req.duplex {
            want |= WANT_STDIN;
        }
        let replay = if req.logs {
            let opts = LogOptions {
                stdout: want & WANT_STDOUT != 0,
                stderr: want & WANT_STDERR != 0,
                ..Default::default()
            };
            Some(self.logs(&c.id, opts).await?.1)
        } else {
            None
        };
        let source = if req.stream && want != 0 {
            Some(self.register_attach(&c.id, want)?)
        } else {
            None
        };
        Ok(Session {
            source,
            want,
            keys,
            stdin_once,
            exec: None,
            tty,
            replay,
        })
    }
}

impl Containers {
    /// `POST /exec/{id}/start`: detached (None, once the process started), or a
    /// session whose process starts once the client has its answer, with the
    /// stream already connected to it.
    pub async fn exec_start_session(
        self: &Arc<Self>,
        id: &str,
        opts: berth_api::ExecStartConfig,
        duplex: bool,
    ) -> ApiResult<Option<Session>> {
        let exec = self.exec_get(id)?;
        if exec.state().started {
            return Err(crate::error::ApiError::conflict(format!(
                "Exec {id} has already been started"
            )));
        }
        if opts.detach {
            self.exec_start(&exec, None).await?;
            return Ok(None);
        }
        let cfg = &exec.config;
        let keys = if cfg.detach_keys.is_empty() {
            detach::DEFAULT.to_vec()
        } else {
            detach::parse(&cfg.detach_keys)?
        };
        let mut want = 0;
        if cfg.attach_stdout {
            want |= WANT_STDOUT;
        }
        if cfg.attach_stderr {
            want |= WANT_STDERR;
        }
        if cfg.attach_stdin && duplex {
            want |= WANT_STDIN;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let session = Session {
            source: (want != 0).then_some(AttachSource::Pending(rx)),
            want,
            keys,
            // An exec's stdin ends with its client's.
            stdin_once: true,
            exec: Some(exec.clone()),
            tty: cfg.tty,
            replay: None,
        };
        let me = self.clone();
        let attach = (want != 0).then_some((want, tx));
        tokio::spawn(async move {
            let _ = me.exec_start(&exec, attach).await;
        });
        Ok(Some(session))
    }
}

/// One attach: what to relay between a client connection and a shim.
pub struct Session {
    pub(super) source: Option<AttachSource>,
    pub(super) want: u8,
    pub(super) keys: Vec<u8>,
    pub(super) stdin_once: bool,
    /// For an exec: the stream ends only once its exit is recorded (clients inspect
    /// the exec for its exit code right after), and a failure to start is told in it.
    pub(super) exec: Option<Arc<Exec>>,
    pub(super) tty: bool,
    /// Output to send before the live streams (the logs, for `logs=1`).
    pub(super) replay: Option<mpsc::Receiver<Bytes>>,
}

impl Session {
    /// Whether the streams are raw (a TTY) rather than multiplexed.
    pub fn tty(&self) -> bool {
        self.tty
    }

    /// Waits for an exec's end and writes its start failure, if any, to the client.
    async fn exec_epilogue<W: tokio::io::AsyncWrite + Unpin>(&self, cw: &mut W) {
        let Some(e) = &self.exec else { return };
        let mut done = e.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
        let error = e.state().error.clone();
        if !error.is_empty() {
            let msg = format!("{error}\r\n");
            if !self.tty {
                let _ = cw
                    .write_all(&berth_runtime::shimproto::frame_header(2, msg.len()))
                    .await;
            }
            let _ = cw.write_all(msg.as_bytes()).await;
        }
    }

    /// Relays between `client` and the container until the output ends or the
    /// client detaches or leaves.
    pub async fn relay<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(mut self, client: S) {
        let (mut cr, mut cw) = tokio::io::split(client);
        if let Some(mut r) = self.replay.take() {
            while let Some(b) = r.recv().await {
                if cw.write_all(&b).await.is_err() {
                    return;
                }
            }
        }
        let Some(source) = self.source.take() else {
            let _ = cw.shutdown().await;
            return;
        };
        let Some(shim) = source.connect().await else {
            self.exec_epilogue(&mut cw).await;
            let _ = cw.shutdown().await;
            return;
        };
        let (mut sr, mut sw) = shim.into_split();
        let output = async {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
            self.exec_epilogue(&mut cw).await;
            let _ = cw.shutdown().await;
        };
        let input = async {
            let mut buf = vec![0u8; 32 * 1024];
            if self.want & WANT_STDIN == 0 {
                // Nothing to forward; reading only notices the client leaving.
                while matches!(cr.read(&mut buf).await, Ok(n) if n > 0) {}
                return false;
            }
            let mut proxy = detach::EscapeProxy::new(self.keys.clone());
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        if self.stdin_once {
                            let _ = sw.write_all(&input_frame(IN_CLOSE, b"")).await;
                        }
                        return false;
                    }
                    Ok(n) => n,
                };
                let (data, detached) = proxy.feed(&buf[..n]);
                if !data.is_empty() && sw.write_all(&input_frame(IN_DATA, &data)).await.is_err() {
                    return false;
                }
                if detached {
                    return true;
                }
            }
        };
        tokio::pin!(output, input);
        tokio::select! {
            _ = &mut output => {}
            detached = &mut input => {
                // Detaching ends the attach at once; otherwise the output goes on
                // until the container's output ends.
                if !detached {
                    output.await;
                }
            }
        }
    }
}
