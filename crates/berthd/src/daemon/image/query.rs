//! Images as the API shows them: listings with Docker's filters, inspect, history,
//! prune, and the Dockerfile-style `changes` of `docker import` and `commit`.

use crate::daemon::time::parse_time;
use crate::error::{ApiError, ApiResult};
use berth_api::{ContainerConfig, HistoryResponseItem, ImageInspect, ImageRootFs, ImageSummary};
use berth_image::{Image, Store};
use std::collections::HashMap;

fn created_unix(i: &Image) -> i64 {
    i.config
        .created
        .as_deref()
        .and_then(parse_time)
        .map_or(0, |t| t.timestamp())
}

/// Go's path.Match for `reference` filters, where `*` does not cross `/`.
fn glob(pattern: &str, s: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                rec(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && rec(p, &s[1..]))
            }
            (Some(b'?'), Some(c)) if *c != b'/' => rec(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &s[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), s.as_bytes())
}

pub fn list(
    store: &Store,
    users: &HashMap<String, i64>,
    _all: bool,
    filters: &HashMap<String, Vec<String>>,
) -> ApiResult<Vec<ImageSummary>> {
    for k in filters.keys() {
        if !["dangling", "reference", "label"].contains(&k.as_str()) {
            return Err(ApiError::invalid(format!("invalid filter '{k}'")));
        }
    }
    let dangling = match filters
        .get("dangling")
        .and_then(|v| v.first())
        .map(String::as_str)
    {
        None => None,
        Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        Some(v) => return Err(ApiError::invalid(format!("invalid filter 'dangling={v}'"))),
    };
    let mut out = Vec::new();
    for i in store.images()? {
        if dangling.is_some_and(|d| d != i.tags.is_empty()) {
            continue;
        }
        let mut tags = i.tags.clone();
        if let Some(refs) = filters.get("reference") {
            tags.retain(|t| {
                refs.iter().any(|r| {
                    let repo = t.rsplit_once(':').map_or(t.as_str(), |(r, _)| r);
                    glob(r, t) || glob(r, repo)
                })
            });
            if tags.is_empty() {
                continue;
            }
        }
        let labels = i
            .config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if let Some(ls) = filters.get("label") {
            let ok = ls.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
                None => labels.contains_key(l),
            });
            if !ok {
                continue;
            }
        }
        out.push(ImageSummary {
            id: i.id.clone(),
            parent_id: String::new(),
            repo_tags: tags,
            repo_digests: i.repo_digests.clone(),
            created: created_unix(&i),
            size: i.size(),
            shared_size: -1,
            labels,
            containers: users.get(&i.id).copied().unwrap_or(0),
        });
    }
    Ok(out)
}

pub fn inspect(store: &Store, name: &str) -> ApiResult<ImageInspect> {
    let i = store.resolve(name)?;
    let lower: Vec<String> = store
        .lower_dirs(&i)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok(ImageInspect {
        id: i.id.clone(),
        repo_tags: i.tags.clone(),
        repo_digests: i.repo_digests.clone(),
        parent: String::new(),
        comment: i
            .config
            .history
            .last()
            .and_then(|h| h.comment.clone())
            .unwrap_or_default(),
        created: i.config.created.clone().unwrap_or_default(),
        docker_version: String::new(),
        author: i.config.author.clone().unwrap_or_default(),
        config: i.config.config.clone().unwrap_or_default(),
        container_config: i.config.container_config.clone().unwrap_or_default(),
        architecture: i.config.architecture.clone(),
        variant: i.config.variant.clone(),
        os: i.config.os.clone(),
        size: i.size(),
        graph_driver: serde_json::json!({ "Name": "overlay2", "Data": { "LowerDir": lower.join(":") } }),
        root_fs: ImageRootFs {
            kind: "layers".into(),
            layers: i.config.rootfs.diff_ids.clone(),
        },
        metadata: serde_json::json!({ "LastTagTime": "0001-01-01T00:00:00Z" }),
    })
}

/// Newest first; the top entry carries the image id and tags, the rest `<missing>`.
pub fn history(store: &Store, name: &str) -> ApiResult<Vec<HistoryResponseItem>> {
    let i = store.resolve(name)?;
    let mut layer_sizes = i.layers.iter().map(|(_, s)| *s);
    let mut items = Vec::new();
    if i.config.history.is_empty() {
        for (_, size) in &i.layers {
            items.push(HistoryResponseItem {
                id: "<missing>".into(),
                created: created_unix(&i),
                size: *size,
                ..Default::default()
            });
        }
    }
    for h in &i.config.history {
        let size = if h.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        items.push(HistoryResponseItem {
            id: "<missing>".into(),
            created: h
                .created
                .as_deref()
                .and_then(parse_time)
                .map_or(0, |t| t.timestamp()),
            created_by: h.created_by.clone().unwrap_or_default(),
            tags: vec![],
            size,
            comment: h.comment.clone().unwrap_or_default(),
        });
    }
    items.reverse();
    if let Some(top) = items.first_mut() {
        top.id = i.id.clone();
        top.tags = i.tags.clone();
    }
    Ok(items)
}

/// JSON array form, or the shell form run by `/bin/sh -c`.
fn exec_form(arg: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(arg) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), arg.to_string()],
    }
}

/// `KEY=value KEY2="two words"` or the legacy `KEY value`.
fn key_values(arg: &str, what: &str) -> ApiResult<Vec<(String, String)>> {
    if !arg.contains('=') {
        let (k, v) = arg
            .split_once(char::is_whitespace)
            .ok_or_else(|| ApiError::invalid(format!("{what} requires two arguments")))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = arg.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let mut val = String::new();
        let mut quote = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => break,
                (_, '\\') => {
                    chars.next();
                    if let Some(n) = chars.peek() {
                        val.push(*n);
                    }
                }
                (_, c) => val.push(c),
            }
            chars.next();
        }
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(ApiError::invalid(format!("{what} names can not be blank")));
        }
        out.push((key, val));
    }
    Ok(out)
}

/// Applies Dockerfile instructions (`--change` of import and commit) over `c`.
pub fn apply_changes(mut c: ContainerConfig, changes: &[&str]) -> ApiResult<ContainerConfig> {
    for change in changes {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let (instr, arg) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let arg = arg.trim();
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => c.cmd = Some(exec_form(arg)),
            "ENTRYPOINT" => c.entrypoint = Some(exec_form(arg)),
            "ENV" => {
                let env = c.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(arg, "ENV")? {
                    env.retain(|e| !e.starts_with(&format!("{k}=")));
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let labels = c.labels.get_or_insert_with(Default::default);
                for (k, v) in key_values(arg, "LABEL")? {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = c.exposed_ports.get_or_insert_with(Default::default);
                for p in arg.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    ports.insert(p, serde_json::json!({}));
                }
            }
            "VOLUME" => {
                let vols = c.volumes.get_or_insert_with(Default::default);
                let list = serde_json::from_str::<Vec<String>>(arg)
                    .unwrap_or_else(|_| arg.split_whitespace().map(String::from).collect());
                for v in list {
                    vols.insert(v, serde_json::json!({}));
                }
            }
            "USER" => c.user = arg.to_string(),
            "WORKDIR" => c.working_dir = arg.to_string(),
            "STOPSIGNAL" => c.stop_signal = Some(arg.to_string()),
            "ONBUILD" => c
                .on_build
                .get_or_insert_with(Vec::new)
                .push(arg.to_string()),
            other => {
                return Err(ApiError::invalid(format!(
                    "{other} is not a valid change command"
                )))
            }
        }
    }
    Ok(c)
}

/// `POST /images/prune`: images without tags (`dangling=false`: every image) that no
/// container uses, with their layers no other image holds.
pub fn prune(
    store: &Store,
    users: &HashMap<String, i64>,
    is_running: &dyn Fn(&str) -> bool,
    filters: &HashMap<String, Vec<String>>,
) -> ApiResult<berth_api::ImagePruneResponse> {
    for k in filters.keys() {
        if !["dangling", "until", "label"].contains(&k.as_str()) {
            return Err(ApiError::invalid(format!("invalid filter '{k}'")));
        }
    }
    let all = match filters
        .get("dangling")
        .and_then(|v| v.first())
        .map(String::as_str)
    {
        None | Some("true") | Some("1") => false,
        Some("false") | Some("0") => true,
        Some(v) => return Err(ApiError::invalid(format!("invalid filter 'dangling={v}'"))),
    };
    let until = filters
        .get("until")
        .and_then(|v| v.first())
        .map(|u| {
            crate::daemon::time::parse_unix_nanos(u)
                .map(|n| (n / 1_000_000_000) as i64)
                .or_else(|| crate::daemon::time::parse_time(u).map(|t| t.timestamp()))
                .ok_or_else(|| ApiError::invalid(format!("invalid filter 'until={u}'")))
        })
        .transpose()?;
    let labels = filters.get("label").cloned().unwrap_or_default();
    let mut deleted = Vec::new();
    let mut reclaimed: i64 = 0;
    for img in store.images()? {
        if users.contains_key(&img.id) || (!all && !img.tags.is_empty()) {
            continue;
        }
        if until.is_some_and(|u| created_unix(&img) >= u) {
            continue;
        }
        let have = img
            .config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let matches = labels.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => have.get(k).map(String::as_str) == Some(v),
            None => have.contains_key(l),
        });
        if !matches {
            continue;
        }
        let sizes: HashMap<String, i64> = img.layers.iter().cloned().collect();
        let items = store.remove(&img.id, true, is_running)?;
        for it in &items {
            if let Some(d) = &it.deleted {
                reclaimed += sizes.get(d).copied().unwrap_or(0);
            }
        }
        deleted.extend(items);
    }
    Ok(berth_api::ImagePruneResponse {
        images_deleted: deleted,
        space_reclaimed: reclaimed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_changes() {
        let c = apply_changes(
            ContainerConfig::default(),
            &[
                "CMD [\"/bin/sh\"]",
                "ENV A=1 B=\"two words\"",
                "ENV C 3",
                "EXPOSE 80 53/udp",
                "WORKDIR /srv",
                "LABEL x=y",
            ],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), ["/bin/sh"]);
        assert_eq!(c.env.unwrap(), ["A=1", "B=two words", "C=3"]);
        assert!(c.exposed_ports.unwrap().contains_key("53/udp"));
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.labels.unwrap()["x"], "y");
        let e = apply_changes(ContainerConfig::default(), &["RUN make"]).unwrap_err();
        assert_eq!(e.message, "RUN is not a valid change command");
        assert_eq!(
            apply_changes(ContainerConfig::default(), &["ENTRYPOINT echo hi"])
                .unwrap()
                .entrypoint
                .unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
    }

    #[test]
    fn reference_globs() {
        assert!(glob("busy*", "busybox"));
        assert!(!glob("*", "me/app"));
        assert!(glob("*/*", "me/app"));
        assert!(glob("busybox:?atest", "busybox:latest"));
    }
}
