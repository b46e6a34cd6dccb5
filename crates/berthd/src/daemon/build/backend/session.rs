//! What a build's backend asks of, or sends through, the client's session:
//! registry credentials, and the result's files as a tar or a directory
//! (`-o type=tar|local`).

use super::*;

impl Steps {
    /// The registry credentials the client's session gives for `registry`
    /// (`Auth/Credentials`, as BuildKit asks the docker CLI's config), if any.
    pub(super) async fn session_credentials(
        &self,
        registry: &str,
    ) -> Option<berth_registry::auth::Credentials> {
        const METHOD: &str = "/moby.filesync.v1.Auth/Credentials";
        let s = self.session.as_ref().filter(|s| s.serves(METHOD))?;
        // BuildKit names Docker Hub by its registry host.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let req = berth_buildkit::proto::CredentialsRequest {
            host: host.to_string(),
        };
        let r = s
            .channel
            .unary::<_, berth_buildkit::proto::CredentialsResponse>(METHOD, &[], &req)
            .await
            .ok()?;
        match (r.username.is_empty(), r.secret.is_empty()) {
            (_, true) => None,
            (true, false) => Some(berth_registry::auth::Credentials {
                identity_token: r.secret,
                ..Default::default()
            }),
            (false, false) => Some(berth_registry::auth::Credentials {
                username: r.username,
                password: r.secret,
                ..Default::default()
            }),
        }
    }

    /// Sends the filesystem of `layers` to the client's session as a directory
    /// (`-o type=local`): the client's file sync asks for the files it writes.
    pub async fn send_dir(&self, layers: &[Layer]) -> Result<(), String> {
        const METHOD: &str = "/moby.filesync.v1.FileSend/DiffCopy";
        let session = self
            .session
            .as_ref()
            .filter(|s| s.serves(METHOD))
            .ok_or("the client's session takes no local output")?;
        let snap = Snapshot {
            config: Default::default(),
            layers: layers.to_vec(),
        };
        let view = self.view(&snap)?;
        let sent = berth_buildkit::filesync::send(&session.channel, METHOD, &[], view.path()).await;
        drop(view);
        let sent = sent.map_err(|e| format!("sending the local output: {e}"))?;
        tracing::debug!(files = sent.files, bytes = sent.bytes, "local output sent");
        Ok(())
    }

    /// `-o type=tar` of a BuildKit client: the filesystem of `layers` as a tar,
    /// streamed to the session's `FileSend/DiffCopy` as it is written.
    pub async fn send_tar(&self, layers: &[Layer]) -> Result<(), String> {
        const METHOD: &str = "/moby.filesync.v1.FileSend/DiffCopy";
        let session = self
            .session
            .as_ref()
            .filter(|s| s.serves(METHOD))
            .ok_or("the client's session takes no tar output")?;
        let snap = Snapshot {
            config: Default::default(),
            layers: layers.to_vec(),
        };
        let view = self.view(&snap)?;
        let (tx, mut rx) = session
            .channel
            .bidi::<berth_buildkit::proto::BytesMessage, berth_buildkit::proto::BytesMessage>(
                METHOD,
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let root = view.path().to_path_buf();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            struct Chunks(
                tokio::sync::mpsc::Sender<berth_buildkit::proto::BytesMessage>,
                Vec<u8>,
            );
            impl std::io::Write for Chunks {
                fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                    self.1.extend_from_slice(b);
                    if self.1.len() >= 1 << 20 {
                        self.flush()?;
                    }
                    Ok(b.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    if !self.1.is_empty() {
                        let data = std::mem::take(&mut self.1);
                        self.0
                            .blocking_send(berth_buildkit::proto::BytesMessage { data })
                            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
                    }
                    Ok(())
                }
            }
            let mut b = tar::Builder::new(Chunks(tx, Vec::new()));
            b.follow_symlinks(false);
            b.append_dir_all(".", &root)?;
            let mut w = b.into_inner()?;
            std::io::Write::flush(&mut w)
        });
        // The client answers once the stream ends.
        let answer = async { while let Ok(Some(_)) = rx.next().await {} };
        let (written, _) = tokio::join!(writer, answer);
        drop(view);
        written
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("sending the tar output: {e}"))
    }
}
