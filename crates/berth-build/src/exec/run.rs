//! RUN: the command line, its mounts, the step run over the backend.

use super::{digest, BuildError, Shared, State, COMMENT, PROXY_ARGS};
use crate::backend::Backend;
use crate::backend::{RunMount, RunStep, Sharing, View};
use crate::instruction::Command;
use crate::rootfs::clean_abs;
use crate::shell::Vars;
use berth_api::{ContainerConfig, HistoryEntry, ImageConfigBlob};
use std::collections::BTreeMap;
use std::sync::Arc;

impl<B: Backend> Shared<B> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run(
        self: &Arc<Self>,
        id: usize,
        stage: usize,
        state: State,
        mut cfg: ImageConfigBlob,
        node: &crate::parser::Node,
        cmd: &Command,
        mounts: &[String],
        network: &Option<String>,
        security: &Option<String>,
        heredocs: &[crate::parser::Heredoc],
        vars: &Vars,
    ) -> Result<State, BuildError> {
        let c = cfg.config.get_or_insert_with(Default::default);
        let shell = c
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        let mut script_mount = None;
        let args: Vec<String> = match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut argv = shell.clone();
                let marker = heredocs.first().map(|h| h.name.clone());
                let only_heredoc = heredocs.len() == 1
                    && marker.as_ref().is_some_and(|m| {
                        let t = s.trim();
                        t == format!("<<{m}")
                            || t == format!("<<-{m}")
                            || t == format!("<<\"{m}\"")
                            || t == format!("<<'{m}'")
                    });
                if only_heredoc && heredocs[0].content.starts_with("#!") {
                    // A script with its own interpreter runs as a file, as
                    // BuildKit runs it: mounted at /dev/pipes/<name>.
                    let h = &heredocs[0];
                    let file = self
                        .backend
                        .scratch()
                        .join(format!("heredoc-{}", digest(&[&state.key, &h.content])));
                    std::fs::write(&file, &h.content)
                        .and_then(|_| {
                            std::fs::set_permissions(
                                &file,
                                std::os::unix::fs::PermissionsExt::from_mode(0o755),
                            )
                        })
                        .map_err(|e| self.step_err(node, e.to_string()))?;
                    let target = format!("/dev/pipes/{}", h.name);
                    script_mount = Some(RunMount::Bind {
                        source: file,
                        target: target.clone(),
                        readonly: true,
                    });
                    vec![target]
                } else if only_heredoc {
                    argv.push(heredocs[0].content.clone());
                    argv
                } else if heredocs.is_empty() {
                    argv.push(s.clone());
                    argv
                } else {
                    let mut script = s.clone();
                    for h in heredocs {
                        script.push('\n');
                        script.push_str(&h.content);
                        script.push_str(&h.name);
                    }
                    argv.push(script);
                    argv
                }
            }
        };
        let network = match network.as_deref() {
            None => self.opts.network.clone(),
            Some(n @ ("default" | "none" | "host")) => {
                if n == "default" {
                    self.opts.network.clone()
                } else {
                    n.to_string()
                }
            }
            Some(other) => {
                return Err(self.step_err(
                    node,
                    format!("unsupported network mode {other:?} (default, none or host)"),
                ))
            }
        };
        let insecure = match security.as_deref() {
            None | Some("sandbox") => false,
            Some("insecure") => true,
            Some(other) => {
                return Err(self.step_err(node, format!("unsupported security mode {other:?}")))
            }
        };
        let mut run_mounts = Vec::new();
        let mut mount_key = Vec::new();
        let mut views = Vec::new();
        for m in mounts {
            let m = self.expand(node, m, vars)?;
            mount_key.push(m.clone());
            if let Some(rm) = self.mount(stage, node, &m, c, &mut views).await? {
                run_mounts.push(rm);
            }
        }
        if let Some(m) = script_mount {
            mount_key.push(format!("script:{}", heredocs[0].content));
            run_mounts.push(m);
        }
        let arg_env = self.arg_env(&state);
        {
            let mut used = self.used_args.lock().unwrap_or_else(|p| p.into_inner());
            for e in &arg_env {
                if let Some((k, _)) = e.split_once('=') {
                    used.insert(k.to_string());
                }
            }
        }
        let visible_args: Vec<&String> = arg_env
            .iter()
            .filter(|e| !PROXY_ARGS.contains(&e.split_once('=').map_or(e.as_str(), |(k, _)| k)))
            .collect();
        let shown = match &args {
            a if matches!(cmd, Command::Exec(_)) => serde_json::to_string(a).unwrap_or_default(),
            a => a.join(" "),
        };
        let created_by = if visible_args.is_empty() {
            format!("RUN {shown} # buildkit")
        } else {
            format!(
                "RUN |{} {} {shown} # buildkit",
                visible_args.len(),
                visible_args
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        let key = digest(&[
            &state.key,
            "RUN",
            &serde_json::to_string(&args).unwrap_or_default(),
            &arg_env.join("\n"),
            &mount_key.join("\n"),
            &network,
            &insecure.to_string(),
        ]);
        if let Some(hit) = self.cached(&key) {
            return self.use_cached(state, key, hit);
        }
        if let Some(r) = self.try_import(&state, &key, &cfg.clone()).await {
            return r;
        }
        let c = cfg.config.get_or_insert_with(Default::default);
        let mut env = c.env.clone().unwrap_or_default();
        env.extend(arg_env);
        // The first agent is SSH_AUTH_SOCK, unless the step sets it.
        if let Some(RunMount::Ssh { target, .. }) = run_mounts
            .iter()
            .find(|m| matches!(m, RunMount::Ssh { .. }))
        {
            if !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                env.push(format!("SSH_AUTH_SOCK={target}"));
            }
        }
        let step = RunStep {
            id,
            args: args.clone(),
            env,
            user: c.user.clone(),
            workdir: if c.working_dir.is_empty() {
                "/".into()
            } else {
                c.working_dir.clone()
            },
            network,
            mounts: run_mounts,
            insecure,
        };
        let result = self
            .backend
            .run(&state.snap, &step, &self.out)
            .await
            .map_err(|m| self.step_err(node, m))?;
        drop(views);
        if result.exit_code != 0 {
            let shown = serde_json::to_string(&args).unwrap_or_default();
            let shown = if matches!(cmd, Command::Shell(_)) {
                args.join(" ")
            } else {
                shown
            };
            let mut msg = format!(
                "process \"{}\" did not complete successfully: exit code: {}",
                shown.replace('"', "\\\""),
                result.exit_code
            );
            if !result.tail.is_empty() {
                msg.push_str("\nlast output:\n");
                msg.push_str(&result.tail.join("\n"));
            }
            return Err(self.step_err(node, msg));
        }
        cfg.history.push(HistoryEntry {
            created: Some(self.opts.created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(COMMENT.into()),
            empty_layer: result.layer.is_none(),
        });
        self.finish_step(state, key, cfg, result.layer).await
    }

    /// One `--mount` of a RUN, resolved.
    async fn mount(
        &self,
        stage: usize,
        node: &crate::parser::Node,
        spec: &str,
        c: &ContainerConfig,
        views: &mut Vec<B::View>,
    ) -> Result<Option<RunMount>, BuildError> {
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, "true"));
            kv.insert(
                k.trim().to_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
        let kind = kv.remove("type").unwrap_or_else(|| "bind".into());
        let target = kv
            .remove("target")
            .or_else(|| kv.remove("dst"))
            .or_else(|| kv.remove("destination"));
        let abs = |t: &str| {
            if t.starts_with('/') {
                clean_abs(t)
            } else {
                clean_abs(&format!(
                    "{}/{t}",
                    if c.working_dir.is_empty() {
                        "/"
                    } else {
                        &c.working_dir
                    }
                ))
            }
        };
        let flag = |kv: &BTreeMap<String, String>, names: &[&str]| {
            names
                .iter()
                .any(|n| kv.get(*n).is_some_and(|v| v != "false"))
        };
        let readonly = flag(&kv, &["ro", "readonly"]);
        let rw = flag(&kv, &["rw", "readwrite"]);
        let num = |kv: &BTreeMap<String, String>,
                   k: &str,
                   radix: u32,
                   default: u32|
         -> Result<u32, BuildError> {
            match kv.get(k) {
                None => Ok(default),
                Some(v) => u32::from_str_radix(v, radix)
                    .map_err(|_| self.step_err(node, format!("invalid {k} {v:?} in --mount"))),
            }
        };
        match kind.as_str() {
            "bind" => {
                let target = target
                    .ok_or_else(|| self.step_err(node, "--mount type=bind requires a target"))?;
                let source = kv
                    .get("source")
                    .or_else(|| kv.get("src"))
                    .cloned()
                    .unwrap_or_else(|| "/".into());
                let root = match kv.get("from") {
                    None => self.context.dir.clone(),
                    Some(f) => {
                        let snap = self.state_named(stage, node, f).await?;
                        let v = self
                            .backend
                            .view(&snap)
                            .map_err(|m| self.step_err(node, m))?;
                        let p = v.path().to_path_buf();
                        views.push(v);
                        p
                    }
                };
                let src = crate::rootfs::scoped(&root, &source, true);
                if !src.exists() {
                    return Err(self.step_err(
                        node,
                        format!(
                            "failed to compute cache key: {:?}: not found",
                            clean_abs(&source)
                        ),
                    ));
                }
                Ok(Some(RunMount::Bind {
                    source: src,
                    target: abs(&target),
                    readonly: !rw,
                }))
            }
            "cache" => {
                let target = target
                    .ok_or_else(|| self.step_err(node, "--mount type=cache requires a target"))?;
                let target = abs(&target);
                let id = kv.get("id").cloned().unwrap_or_else(|| target.clone());
                let sharing = match kv.get("sharing").map(String::as_str) {
                    None | Some("shared") => Sharing::Shared,
                    Some("private") => Sharing::Private,
                    Some("locked") => Sharing::Locked,
                    Some(o) => {
                        return Err(self.step_err(node, format!("unsupported sharing value {o:?}")))
                    }
                };
                let seed = match kv.get("from") {
                    None => None,
                    Some(f) => {
                        let snap = self.state_named(stage, node, f).await?;
                        let v = self
                            .backend
                            .view(&snap)
                            .map_err(|m| self.step_err(node, m))?;
                        let source = kv
                            .get("source")
                            .or_else(|| kv.get("src"))
                            .cloned()
                            .unwrap_or_else(|| "/".into());
                        let p = crate::rootfs::scoped(v.path(), &source, true);
                        views.push(v);
                        Some(p)
                    }
                };
                Ok(Some(RunMount::Cache {
                    id,
                    target,
                    sharing,
                    uid: num(&kv, "uid", 10, 0)?,
                    gid: num(&kv, "gid", 10, 0)?,
                    mode: num(&kv, "mode", 8, 0o755)?,
                    seed,
                    readonly,
                }))
            }
            "tmpfs" => {
                let target = target
                    .ok_or_else(|| self.step_err(node, "--mount type=tmpfs requires a target"))?;
                let size = match kv.get("size") {
                    None => None,
                    Some(s) => Some(parse_size(s).ok_or_else(|| {
                        self.step_err(node, format!("invalid size {s:?} in --mount"))
                    })?),
                };
                Ok(Some(RunMount::Tmpfs {
                    target: abs(&target),
                    size,
                }))
            }
            "secret" => {
                let required = flag(&kv, &["required"]);
                if kv.contains_key("env") {
                    return Err(self.step_err(
                        node,
                        "--mount=type=secret,env= is not supported by berth yet: mount the secret as a file",
                    ));
                }
                let id = kv.get("id").cloned().unwrap_or_else(|| {
                    target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .unwrap_or("")
                        .to_string()
                });
                if id.is_empty() {
                    return Err(self.step_err(node, "--mount=type=secret needs an id or a target"));
                }
                let target = target
                    .map(|t| abs(&t))
                    .unwrap_or_else(|| format!("/run/secrets/{id}"));
                match self
                    .backend
                    .secret(&id)
                    .await
                    .map_err(|m| self.step_err(node, m))?
                {
                    Some(data) => Ok(Some(RunMount::Secret {
                        data,
                        target,
                        uid: num(&kv, "uid", 10, 0)?,
                        gid: num(&kv, "gid", 10, 0)?,
                        mode: num(&kv, "mode", 8, 0o400)?,
                    })),
                    None if required => Err(self.step_err(node, format!("secret {id}: not found"))),
                    None => Ok(None),
                }
            }
            "ssh" => {
                // The client's agent, when its session forwards it; otherwise a
                // required one fails the step and an optional one is absent, as
                // BuildKit does without a provider.
                let required = flag(&kv, &["required"]);
                let id = kv.get("id").cloned().unwrap_or_else(|| "default".into());
                if self
                    .backend
                    .ssh_agent(&id)
                    .await
                    .map_err(|m| self.step_err(node, m))?
                {
                    return Ok(Some(RunMount::Ssh {
                        target: target.map(|t| abs(&t)).unwrap_or_else(|| {
                            format!("/run/buildkit/ssh_agent.{}", ssh_index(&id))
                        }),
                        id,
                        uid: num(&kv, "uid", 10, 0)?,
                        gid: num(&kv, "gid", 10, 0)?,
                        mode: num(&kv, "mode", 8, 0o600)?,
                    }));
                }
                if required {
                    return Err(
                        self.step_err(node, format!("no SSH key {id:?} forwarded from the client"))
                    );
                }
                Ok(None)
            }
            other => Err(self.step_err(node, format!("unsupported mount type {other:?}"))),
        }
    }
}

/// A size such as `64m` (tmpfs mounts).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_lowercase();
    let (num, mul) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        'b' => (&s[..s.len() - 1], 1),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>().ok().map(|n| n * mul)
}

/// A stable small number for an agent's default socket name.
fn ssh_index(id: &str) -> u32 {
    id.bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32))
        % 1000
}
