//! The local terminal during `berth run -t`: raw mode (restored on drop), and the
//! container's terminal kept at our size (SIGWINCH).

use crate::client::Client;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions, Termios};
use std::io::IsTerminal;

/// Our terminal's size (rows, columns), if stdout is a terminal.
pub fn size() -> Option<(u16, u16)> {
    let out = std::io::stdout();
    if !out.is_terminal() {
        return None;
    }
    tcgetwinsize(&out).ok().map(|w| (w.ws_row, w.ws_col))
}

/// Puts stdin in raw mode while it lives.
pub struct RawMode(Termios);

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
    }
}

/// For an attached terminal: raw mode on our stdin (when it is a terminal), and a
/// task that passes our window size on, now and on every SIGWINCH. `target` is
/// `/containers/<id>` or `/exec/<id>`.
pub async fn follow(c: &Client, target: &str) -> Option<RawMode> {
    let stdin = std::io::stdin();
    let raw = if stdin.is_terminal() {
        tcgetattr(&stdin).ok().and_then(|orig| {
            let mut t = orig.clone();
            t.make_raw();
            tcsetattr(&stdin, OptionalActions::Now, &t)
                .ok()
                .map(|_| RawMode(orig))
        })
    } else {
        None
    };
    if let Some((rows, cols)) = size() {
        let _ = c.post(&format!("{target}/resize?h={rows}&w={cols}")).await;
        let client = c.clone();
        let target = target.to_string();
        tokio::spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((rows, cols)) = size() {
                    let _ = client
                        .post(&format!("{target}/resize?h={rows}&w={cols}"))
                        .await;
                }
            }
        });
    }
    raw
}
