//! The instructions that change only the image configuration, and WORKDIR.

use super::{digest, BuildError, Shared, State, COMMENT};
use crate::backend::Backend;
use crate::instruction::{Command, Health, Kind};
use crate::rootfs::{clean_abs, lookup_user, Layers};
use berth_api::HistoryEntry;
use std::sync::Arc;

impl<B: Backend> Shared<B> {
    /// A step: from the cache when its key is there, else made.
    pub(super) async fn dispatch(
        self: &Arc<Self>,
        id: usize,
        stage: usize,
        mut state: State,
        ins: &crate::instruction::Instruction,
        node: &crate::parser::Node,
    ) -> Result<State, BuildError> {
        let vars = self.vars(&state);
        let created = self.opts.created.clone();
        let hist = |created_by: String, empty: bool| HistoryEntry {
            created: Some(created.clone()),
            created_by: Some(created_by),
            author: None,
            comment: Some(COMMENT.into()),
            empty_layer: empty,
        };
        // ARG changes only the scope (and what later keys see).
        if let Kind::Arg(args) = &ins.kind {
            for (name, default) in args {
                let value = if let Some(v) = self.opts.build_args.get(name) {
                    self.used_args
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone());
                    Some(v.clone())
                } else if let Some(d) = default {
                    Some(self.expand(node, d, &vars)?)
                } else {
                    self.meta.get(name).cloned()
                };
                state.args.insert(name.clone(), value);
            }
            state.key = digest(&[&state.key, "arg", &format!("{:?}", state.args)]);
            state.cached = false;
            self.note_step(false);
            return Ok(state);
        }
        let mut cfg = state.snap.config.clone();
        let c = cfg.config.get_or_insert_with(Default::default);
        // Metadata-only instructions: the new configuration, keyed by what it sets.
        let meta_change: Option<(String, String)> = match &ins.kind {
            Kind::Env(pairs) => {
                let mut text = Vec::new();
                let mut v = vars.clone();
                for (k, val) in pairs {
                    let k = self.expand(node, k, &v)?;
                    let val = self.expand(node, val, &v)?;
                    v.insert(k.clone(), val.clone());
                    let env = c.env.get_or_insert_with(Vec::new);
                    env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
                    env.push(format!("{k}={val}"));
                    text.push(format!("{k}={val}"));
                }
                let t = format!("ENV {}", text.join(" "));
                Some((t.clone(), t))
            }
            Kind::Label(pairs) => {
                let mut text = Vec::new();
                for (k, val) in pairs {
                    let k = self.expand(node, k, &vars)?;
                    let val = self.expand(node, val, &vars)?;
                    c.labels
                        .get_or_insert_with(Default::default)
                        .insert(k.clone(), val.clone());
                    text.push(format!("{k}={val}"));
                }
                let t = format!("LABEL {}", text.join(" "));
                Some((t.clone(), t))
            }
            Kind::Maintainer(m) => {
                cfg.author = Some(m.clone());
                Some((format!("MAINTAINER {m}"), format!("MAINTAINER {m}")))
            }
            Kind::Cmd(cmd) | Kind::Entrypoint(cmd) => {
                let is_cmd = matches!(ins.kind, Kind::Cmd(_));
                let argv = match cmd {
                    Command::Exec(v) => v.clone(),
                    Command::Shell(s) => {
                        let mut v = c
                            .shell
                            .clone()
                            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                        v.push(s.clone());
                        v
                    }
                };
                let word = if is_cmd { "CMD" } else { "ENTRYPOINT" };
                if is_cmd {
                    c.cmd = Some(argv.clone());
                } else {
                    c.entrypoint = Some(argv.clone());
                    // An ENTRYPOINT resets a CMD the base image set.
                    c.cmd = None;
                }
                let t = format!(
                    "{word} {}",
                    serde_json::to_string(&argv).unwrap_or_default()
                );
                Some((t.clone(), t))
            }
            Kind::Shell(v) => {
                c.shell = Some(v.clone());
                let t = format!("SHELL {}", serde_json::to_string(v).unwrap_or_default());
                Some((t.clone(), t))
            }
            Kind::Expose(ports) => {
                let mut text = Vec::new();
                for p in ports {
                    let p = self.expand(node, p, &vars)?;
                    let p = if p.contains('/') {
                        p.to_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let (port, proto) = p.split_once('/').expect("has a slash");
                    let ok = !port.is_empty()
                        && port.split('-').all(|n| n.parse::<u16>().is_ok())
                        && ["tcp", "udp", "sctp"].contains(&proto);
                    if !ok {
                        return Err(self.step_err(node, format!("invalid containerPort: {port}")));
                    }
                    c.exposed_ports
                        .get_or_insert_with(Default::default)
                        .insert(p.clone(), serde_json::json!({}));
                    text.push(p);
                }
                let t = format!(
                    "EXPOSE map[{}]",
                    text.iter()
                        .map(|p| format!("{p}:{{}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                Some((t.clone(), t))
            }
            Kind::Volume(vols) => {
                let mut text = Vec::new();
                for v in vols {
                    let v = self.expand(node, v, &vars)?;
                    if v.trim().is_empty() {
                        return Err(
                            self.step_err(node, "VOLUME specified can not be an empty string")
                        );
                    }
                    c.volumes
                        .get_or_insert_with(Default::default)
                        .insert(v.clone(), serde_json::json!({}));
                    text.push(v);
                }
                let t = format!("VOLUME [{}]", text.join(" "));
                Some((t.clone(), t))
            }
            Kind::User(u) => {
                let u = self.expand(node, u, &vars)?;
                c.user = u.clone();
                Some((format!("USER {u}"), format!("USER {u}")))
            }
            Kind::StopSignal(sig) => {
                let sig = self.expand(node, sig, &vars)?;
                c.stop_signal = Some(sig.clone());
                Some((format!("STOPSIGNAL {sig}"), format!("STOPSIGNAL {sig}")))
            }
            Kind::OnBuild(t) => {
                c.on_build.get_or_insert_with(Vec::new).push(t.clone());
                Some((format!("ONBUILD {t}"), format!("ONBUILD {t}")))
            }
            Kind::Healthcheck(h) => {
                let v = healthcheck(h).map_err(|m| self.step_err(node, m))?;
                let t = format!("HEALTHCHECK {v}");
                c.healthcheck = Some(v);
                Some((t.clone(), t))
            }
            _ => None,
        };
        if let Some((key_text, created_by)) = meta_change {
            cfg.history.push(hist(created_by, true));
            let key = digest(&[&state.key, &key_text]);
            return self.finish_step(state, key, cfg, None).await;
        }
        match &ins.kind {
            Kind::Workdir(w) => {
                let w = self.expand(node, w, &vars)?;
                let cur = c.working_dir.clone();
                let dir = if w.starts_with('/') {
                    clean_abs(&w)
                } else {
                    clean_abs(&format!("{}/{w}", if cur.is_empty() { "/" } else { &cur }))
                };
                c.working_dir = dir.clone();
                let key = digest(&[&state.key, "WORKDIR", &dir, &c.user]);
                if let Some(hit) = self.cached(&key) {
                    return self.use_cached(state, key, hit);
                }
                let user = c.user.clone();
                if let Some(r) = self.try_import(&state, &key, &cfg.clone()).await {
                    return r;
                }
                // The directory is made (owned by the USER) when the image lacks it.
                let dirs = self.backend.layer_dirs(&state.snap);
                let layers = Layers { dirs: &dirs };
                let layer = if layers.is_dir(&dir) {
                    None
                } else {
                    let owner = if user.is_empty() {
                        (0, 0)
                    } else {
                        lookup_user(&layers, &user).unwrap_or((0, 0))
                    };
                    let mut b = tar::Builder::new(Vec::new());
                    let mut path = String::new();
                    for part in dir.split('/').filter(|p| !p.is_empty()) {
                        path.push('/');
                        path.push_str(part);
                        if layers.is_dir(&path) {
                            continue;
                        }
                        let mut h = tar::Header::new_gnu();
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_mode(0o755);
                        h.set_uid(owner.0 as u64);
                        h.set_gid(owner.1 as u64);
                        h.set_mtime(0);
                        h.set_size(0);
                        b.append_data(&mut h, format!("{}/", &path[1..]), std::io::empty())
                            .map_err(|e| self.step_err(node, e.to_string()))?;
                    }
                    let tar = b
                        .into_inner()
                        .map_err(|e| self.step_err(node, e.to_string()))?;
                    let path = self.backend.scratch().join(format!("workdir-{key}.tar"));
                    std::fs::write(&path, tar).map_err(|e| self.step_err(node, e.to_string()))?;
                    let l = self
                        .backend
                        .add_layer(&path)
                        .await
                        .map_err(|m| self.step_err(node, m));
                    let _ = std::fs::remove_file(&path);
                    l?
                };
                cfg.history
                    .push(hist(format!("WORKDIR {dir}"), layer.is_none()));
                self.finish_step(state, key, cfg, layer).await
            }
            Kind::Run {
                cmd,
                mounts,
                network,
                security,
                heredocs,
            } => {
                self.run(
                    id, stage, state, cfg, node, cmd, mounts, network, security, heredocs, &vars,
                )
                .await
            }
            Kind::Copy(copy) => self.copy(stage, state, cfg, node, copy, &vars).await,
            _ => unreachable!("every other instruction changes only the configuration"),
        }
    }
}

/// Go duration text (`30s`, `1m30s`, `500ms`) in nanoseconds.
pub fn duration_ns(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut num = String::new();
    let mut unit = String::new();
    let mut flush = |num: &mut String, unit: &mut String| -> Option<()> {
        if num.is_empty() {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        let m = match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * m;
        num.clear();
        unit.clear();
        Some(())
    };
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            if !unit.is_empty() {
                flush(&mut num, &mut unit)?;
            }
            num.push(ch);
        } else {
            unit.push(ch);
        }
    }
    flush(&mut num, &mut unit)?;
    Some(total as i64)
}

fn healthcheck(h: &Health) -> Result<serde_json::Value, String> {
    let test = match &h.test {
        None => vec!["NONE".to_string()],
        Some(Command::Exec(v)) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
        Some(Command::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let mut v = serde_json::json!({ "Test": test });
    for (k, val) in [
        ("Interval", &h.interval),
        ("Timeout", &h.timeout),
        ("StartPeriod", &h.start_period),
        ("StartInterval", &h.start_interval),
    ] {
        if let Some(d) = val {
            let ns =
                duration_ns(d).ok_or_else(|| format!("invalid duration {d:?} for HEALTHCHECK"))?;
            v[k] = serde_json::json!(ns);
        }
    }
    if let Some(r) = &h.retries {
        let n: i64 = r
            .parse()
            .map_err(|_| format!("invalid retries {r:?} for HEALTHCHECK"))?;
        v["Retries"] = serde_json::json!(n);
    }
    Ok(v)
}
