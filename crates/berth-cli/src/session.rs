//! The session `berth build` serves to berthd for `--secret` and `--ssh`, as the
//! docker CLI does: `POST /session` upgraded to h2c, on which berth is the gRPC
//! server of BuildKit's secrets service (`GetSecret`) and SSH forwarding
//! (`CheckAgent`, `ForwardAgent`); the build names the session. A secret is read
//! from its file or variable only when a step asks for it, and goes nowhere but
//! the session's connection.

use anyhow::{bail, Context, Result};
use berth_buildkit::proto::{
    BytesMessage, CheckAgentRequest, CheckAgentResponse, GetSecretRequest, GetSecretResponse,
};
use berth_buildkit::server::{self, Code, Reply, Status};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
const CHECK_AGENT: &str = "/moby.sshforward.v1.SSH/CheckAgent";
const FORWARD_AGENT: &str = "/moby.sshforward.v1.SSH/ForwardAgent";

/// BuildKit's limit on a secret's size.
const MAX_SECRET: u64 = 500 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    File(PathBuf),
    Env(String),
}

/// What the session offers: secrets by id, agent sockets by id.
#[derive(Debug, Default, Clone)]
pub struct Offer {
    secrets: HashMap<String, Source>,
    agents: HashMap<String, PathBuf>,
}

impl Offer {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.agents.is_empty()
    }

    /// `--secret id=x[,src=path|,env=VAR][,type=file|env]`, as buildx reads it:
    /// with neither source, the variable named by the id if set, else the file.
    pub fn secret(&mut self, spec: &str) -> Result<()> {
        let (mut id, mut file, mut env, mut kind) = (None, None, None, None);
        for field in spec.split(',') {
            let (k, v) = field
                .split_once('=')
                .with_context(|| format!("invalid secret {spec:?}: {field:?} is not key=value"))?;
            match k.to_ascii_lowercase().as_str() {
                "id" => id = Some(v.to_string()),
                "src" | "source" => file = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "type" if v == "file" || v == "env" => kind = Some(v.to_string()),
                "type" => bail!("invalid secret type {v:?}: file or env"),
                _ => bail!("unexpected key {k:?} in secret {spec:?}"),
            }
        }
        if kind.as_deref() == Some("env") && env.is_none() {
            env = file.take();
        }
        let id = id
            .filter(|i| !i.is_empty())
            .with_context(|| format!("secret {spec:?} has no id"))?;
        let source = match (file, env) {
            (Some(f), None) => Source::File(f.into()),
            (None, Some(e)) => Source::Env(e),
            (Some(_), Some(_)) => bail!("secret {id:?}: src and env are exclusive"),
            (None, None) if std::env::var_os(&id).is_some() => Source::Env(id.clone()),
            (None, None) => Source::File(id.clone().into()),
        };
        if let Source::File(p) = &source {
            let m =
                std::fs::metadata(p).with_context(|| format!("failed to stat {}", p.display()))?;
            if m.len() > MAX_SECRET {
                bail!("secret {id:?} is larger than {MAX_SECRET} bytes");
            }
        }
        self.secrets.insert(id, source);
        Ok(())
    }

    /// `--ssh default|id[=socket]`: an agent's socket (SSH_AUTH_SOCK when none
    /// is named). Key files need an agent of berth's own, which it has not.
    pub fn ssh(&mut self, spec: &str) -> Result<()> {
        let (id, paths) = match spec.split_once('=') {
            Some((id, p)) => (id, p.split(',').map(PathBuf::from).collect::<Vec<_>>()),
            None => (spec, Vec::new()),
        };
        if id.is_empty() {
            bail!("invalid ssh spec {spec:?}: default|<id>[=<socket>]");
        }
        let socket = match paths.as_slice() {
            [] => std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .with_context(|| {
                    format!(
                        "invalid empty ssh agent socket for {id:?}: make sure SSH_AUTH_SOCK is set"
                    )
                })?,
            [one] => one.clone(),
            _ => bail!("ssh {id:?}: berth forwards one agent socket per id"),
        };
        use std::os::unix::fs::FileTypeExt;
        let m = std::fs::metadata(&socket)
            .with_context(|| format!("ssh {id:?}: {}", socket.display()))?;
        if !m.file_type().is_socket() {
            bail!(
                "ssh {id:?}: {} is not an agent socket (berth forwards a running ssh-agent; start one and ssh-add the key)",
                socket.display()
            );
        }
        self.agents.insert(id.to_string(), socket);
        Ok(())
    }

    fn methods(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if !self.secrets.is_empty() {
            m.push(GET_SECRET);
        }
        if !self.agents.is_empty() {
            m.extend([CHECK_AGENT, FORWARD_AGENT]);
        }
        m
    }
}

/// A session berthd can call while the build runs; it ends when dropped.
pub struct Session {
    pub id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens the session and serves `offer` on it.
pub async fn open(c: &crate::client::Client, offer: Offer) -> Result<Session> {
    let id = format!("{:016x}{:016x}", rand_u64(), rand_u64());
    let mut headers = vec![
        ("X-Docker-Expose-Session-Uuid", id.clone()),
        ("X-Docker-Expose-Session-Name", "berth-build".to_string()),
        ("X-Docker-Expose-Session-Sharedkey", String::new()),
    ];
    for m in offer.methods() {
        headers.push(("X-Docker-Expose-Session-Grpc-Method", m.to_string()));
    }
    let io = c.upgrade_to("/session", "h2c", &headers).await?;
    let offer = Arc::new(offer);
    let handler: server::Handler = Arc::new(move |call| {
        let offer = offer.clone();
        Box::pin(async move { answer(&offer, call).await })
    });
    let task = tokio::spawn(async move {
        let _ = server::serve(io.into_inner(), handler).await;
    });
    Ok(Session { id, task })
}

fn rand_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_ne_bytes(b)
}

async fn answer(offer: &Offer, mut call: server::Call) -> Reply {
    match call.method.as_str() {
        GET_SECRET => {
            let r: GetSecretRequest = match call.decode().await {
                Ok(r) => r,
                Err(s) => return Reply::Fail(s),
            };
            let data = match offer.secrets.get(&r.id) {
                None => None,
                Some(Source::Env(v)) => std::env::var(v).ok().map(String::into_bytes),
                Some(Source::File(p)) => match std::fs::read(p) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        return Reply::Fail(Status::new(
                            Code::Internal,
                            format!("reading secret {}: {e}", r.id),
                        ))
                    }
                },
            };
            match data {
                Some(data) => Reply::one(&GetSecretResponse { data }),
                None => Reply::Fail(Status::new(
                    Code::NotFound,
                    format!("secret {} not found", r.id),
                )),
            }
        }
        CHECK_AGENT => match call.decode::<CheckAgentRequest>().await {
            Ok(r) if offer.agents.contains_key(&agent_id(&r.id)) => {
                Reply::one(&CheckAgentResponse {})
            }
            Ok(r) => Reply::Fail(Status::new(
                Code::NotFound,
                format!("unset ssh forward key {}", agent_id(&r.id)),
            )),
            Err(s) => Reply::Fail(s),
        },
        FORWARD_AGENT => {
            let id = agent_id(call.meta("buildkit.ssh.id").unwrap_or(""));
            let Some(socket) = offer.agents.get(&id) else {
                return Reply::Fail(Status::new(
                    Code::NotFound,
                    format!("unset ssh forward key {id}"),
                ));
            };
            match tokio::net::UnixStream::connect(socket).await {
                Ok(agent) => Reply::Stream(relay(agent, call)),
                Err(e) => Reply::Fail(Status::new(
                    Code::Unknown,
                    format!("connecting to the agent at {}: {e}", socket.display()),
                )),
            }
        }
        m => Reply::Fail(Status::new(
            Code::Unimplemented,
            format!("berth's session does not serve {m}"),
        )),
    }
}

fn agent_id(id: &str) -> String {
    if id.is_empty() {
        "default".into()
    } else {
        id.to_string()
    }
}

/// Copies the stream's messages to the agent and the agent's bytes back.
fn relay(
    agent: tokio::net::UnixStream,
    mut call: server::Call,
) -> tokio::sync::mpsc::UnboundedReceiver<Result<bytes::Bytes, Status>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut r, mut w) = agent.into_split();
    tokio::spawn(async move {
        while let Ok(Some(m)) = call.next::<BytesMessage>().await {
            if w.write_all(&m.data).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let m = BytesMessage {
                        data: buf[..n].to_vec(),
                    };
                    if tx
                        .send(Ok(prost::Message::encode_to_vec(&m).into()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_as_buildx_reads_them() {
        let d = std::env::temp_dir().join(format!("berth-secret-{}", std::process::id()));
        std::fs::write(&d, "x").unwrap();
        let mut o = Offer::default();
        o.secret(&format!("id=a,src={}", d.display())).unwrap();
        o.secret("id=b,env=SOME_VAR").unwrap();
        o.secret("type=env,id=c,src=OTHER").unwrap();
        assert_eq!(o.secrets["a"], Source::File(d.clone()));
        assert_eq!(o.secrets["b"], Source::Env("SOME_VAR".into()));
        assert_eq!(o.secrets["c"], Source::Env("OTHER".into()));
        assert!(o
            .secret("src=/x")
            .unwrap_err()
            .to_string()
            .contains("no id"));
        assert!(o.secret("id=z,src=/nonexistent/berth").is_err());
        assert!(o
            .secret("id=z,bogus=1")
            .unwrap_err()
            .to_string()
            .contains("bogus"));
        let _ = std::fs::remove_file(&d);
    }

    #[test]
    fn ssh_wants_an_agent_socket() {
        let mut o = Offer::default();
        let e = o.ssh("default=/etc/hostname").unwrap_err().to_string();
        assert!(e.contains("not an agent socket"), "{e}");
        assert!(o.ssh("=x").is_err());
    }
}
