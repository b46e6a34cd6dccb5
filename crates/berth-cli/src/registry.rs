//! `pull`, `push`, `login`, `logout`: the progress of pulls and pushes, and the
//! credentials in ~/.docker/config.json (or `$DOCKER_CONFIG/config.json`), kept
//! the way the docker CLI keeps them.

use crate::client::{enc, Client};
use anyhow::{bail, Context, Result};
use base64::Engine;
use berth_api::JsonMessage;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;

/// Docker Hub's key in config.json.
const HUB_KEY: &str = "https://index.docker.io/v1/";

fn config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker/config.json"),
    }
}

fn read_config() -> Result<Value> {
    let p = config_path();
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

fn write_config(v: &Value) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = config_path();
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))
}

/// The registry of an image name, as config.json keys it.
fn registry_key(image: &str) -> String {
    let first = image.split('/').next().unwrap_or("");
    if image.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
        && first != "docker.io"
    {
        first.to_string()
    } else {
        HUB_KEY.to_string()
    }
}

/// The credential helper for `key` (`credHelpers`, else `credsStore`), if any.
fn helper_for(cfg: &Value, key: &str) -> Option<String> {
    cfg.get("credHelpers")
        .and_then(|h| h.get(key))
        .or_else(|| cfg.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<std::process::Output> {
    use std::io::Write;
    let mut c = std::process::Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running docker-credential-{helper}"))?;
    c.stdin.take().expect("piped").write_all(input)?;
    Ok(c.wait_with_output()?)
}

/// The stored credentials for `key`, from a credential helper or the `auths` entry.
fn credentials(key: &str) -> Result<Option<(String, String)>> {
    let cfg = read_config()?;
    if let Some(h) = helper_for(&cfg, key) {
        let out = run_helper(&h, "get", key.as_bytes())?;
        if !out.status.success() {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .context("reading the credential helper's answer")?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Ok(Some((s("Username"), s("Secret"))));
    }
    let Some(auth) = cfg
        .pointer(&format!(
            "/auths/{}",
            key.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(|a| a.get("auth"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .context("decoding the stored credentials")?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (u, p) = text.split_once(':').unwrap_or((&text, ""));
    Ok(Some((u.to_string(), p.to_string())))
}

/// `X-Registry-Auth` for an image's registry, when credentials are stored.
pub(crate) fn auth_header(image: &str) -> Result<Option<String>> {
    let key = registry_key(image);
    Ok(credentials(&key)?.map(|(u, p)| {
        let v = json!({ "username": u, "password": p, "serveraddress": key });
        base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(&v).expect("serialises"))
    }))
}

/// Prints a pull's or push's messages as they come: one line per change of a
/// layer's status, as Docker prints them without a terminal. Returns 1 on error.
pub(crate) async fn follow(
    resp: hyper::Response<hyper::body::Incoming>,
    quiet: bool,
) -> Result<i32> {
    follow_to(resp, quiet, false).await
}

async fn follow_to(
    resp: hyper::Response<hyper::body::Incoming>,
    quiet: bool,
    to_stderr: bool,
) -> Result<i32> {
    use std::io::{IsTerminal, Write};
    let tty = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let out = |s: String| {
        if to_stderr {
            eprintln!("{s}")
        } else {
            println!("{s}")
        }
    };
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut code = 0;
    let mut seen: HashSet<(String, String)> = HashSet::new();
    // On a terminal: one line per layer, redrawn in place, with a bar.
    let mut block: Vec<(String, String)> = Vec::new();
    let mut drawn = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the daemon's progress")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            if line.len() <= 1 {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&line).context("decoding the daemon's progress")?;
            let m: JsonMessage =
                serde_json::from_value(v.clone()).context("decoding the daemon's progress")?;
            if let Some(e) = m.error_detail.map(|d| d.message).or(m.error) {
                eprintln!("{e}");
                code = 1;
                continue;
            }
            let Some(s) = m.status else { continue };
            if quiet {
                continue;
            }
            match m.id {
                Some(id) if tty => {
                    let text = match (
                        v.pointer("/progressDetail/current").and_then(Value::as_u64),
                        v.pointer("/progressDetail/total").and_then(Value::as_u64),
                    ) {
                        (Some(cur), Some(total)) if total > 0 => format!("{s} {}", bar(cur, total)),
                        _ => s,
                    };
                    match block.iter_mut().find(|(i, _)| *i == id) {
                        Some(l) => l.1 = text,
                        None => block.push((id, text)),
                    }
                    let mut w: Box<dyn Write> = if to_stderr {
                        Box::new(std::io::stderr())
                    } else {
                        Box::new(std::io::stdout())
                    };
                    if drawn > 0 {
                        write!(w, "\x1b[{drawn}A")?;
                    }
                    for (i, t) in &block {
                        writeln!(w, "\x1b[2K{i}: {t}")?;
                    }
                    w.flush()?;
                    drawn = block.len();
                }
                Some(id) => {
                    if seen.insert((id.clone(), s.clone())) {
                        out(format!("{id}: {s}"));
                    }
                }
                None => {
                    out(s);
                    // What follows starts a new block below this line.
                    block.clear();
                    drawn = 0;
                }
            }
        }
    }
    Ok(code)
}

/// Docker's progress bar: `[=====>     ]  12.3MB/60MB`.
fn bar(cur: u64, total: u64) -> String {
    let width = 50u64;
    let done = (cur.min(total) * width / total) as usize;
    let arrow = if done < width as usize { ">" } else { "" };
    let fill = "=".repeat(done.saturating_sub(usize::from(!arrow.is_empty())));
    let human = |n: u64| {
        let (v, u) = if n >= 1_000_000_000 {
            (n as f64 / 1e9, "GB")
        } else if n >= 1_000_000 {
            (n as f64 / 1e6, "MB")
        } else if n >= 1000 {
            (n as f64 / 1e3, "kB")
        } else {
            (n as f64, "B")
        };
        format!("{v:.1}{u}")
    };
    format!(
        "[{fill}{arrow}{}] {:>8}/{}",
        " ".repeat(width as usize - fill.len() - arrow.len()),
        human(cur),
        human(total)
    )
}

pub async fn pull(c: &Client, name: &str, platform: Option<&str>, quiet: bool) -> Result<i32> {
    let (image, tag) = split_tag(name);
    let mut path = format!("/images/create?fromImage={}&tag={}", enc(&image), enc(&tag));
    if let Some(p) = platform {
        path.push_str(&format!("&platform={}", enc(p)));
    }
    let mut headers = Vec::new();
    if let Some(a) = auth_header(&image)? {
        headers.push(("X-Registry-Auth", a));
    }
    let resp = c.request_with(Method::POST, &path, &headers).await?;
    let code = follow(resp, quiet).await?;
    if code == 0 && quiet {
        println!(
            "{}",
            if name.contains(':') || name.contains('@') {
                name.to_string()
            } else {
                format!("{name}:latest")
            }
        );
    }
    Ok(code)
}

/// A pull for `run`/`create`: progress on stderr.
pub async fn pull_to_stderr(c: &Client, name: &str, platform: Option<&str>) -> Result<i32> {
    let (image, tag) = split_tag(name);
    let mut path = format!("/images/create?fromImage={}&tag={}", enc(&image), enc(&tag));
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        path.push_str(&format!("&platform={}", enc(p)));
    }
    let mut headers = Vec::new();
    if let Some(a) = auth_header(&image)? {
        headers.push(("X-Registry-Auth", a));
    }
    let resp = c.request_with(Method::POST, &path, &headers).await?;
    follow_to(resp, false, true).await
}

pub async fn push(c: &Client, name: &str, quiet: bool) -> Result<i32> {
    let (image, tag) = split_tag(name);
    let tag = if tag.is_empty() {
        "latest".to_string()
    } else {
        tag
    };
    let mut headers = Vec::new();
    if let Some(a) = auth_header(&image)? {
        headers.push(("X-Registry-Auth", a));
    }
    let resp = c
        .request_with(
            Method::POST,
            &format!("/images/{image}/push?tag={}", enc(&tag)),
            &headers,
        )
        .await?;
    follow(resp, quiet).await
}

/// `name[:tag]` or `name@digest` into the image and the tag (or digest).
fn split_tag(name: &str) -> (String, String) {
    if let Some((n, d)) = name.split_once('@') {
        return (n.to_string(), d.to_string());
    }
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (
            name[..slash + i].to_string(),
            name[slash + i + 1..].to_string(),
        ),
        None => (name.to_string(), "latest".to_string()),
    }
}

pub async fn login(
    c: &Client,
    server: Option<&str>,
    username: Option<&str>,
    password: Option<&str>,
    password_stdin: bool,
) -> Result<i32> {
    let key = match server {
        None | Some("docker.io") | Some("index.docker.io") => HUB_KEY.to_string(),
        Some(s) => s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    };
    let Some(user) = username.filter(|u| !u.is_empty()) else {
        bail!("Username is required (-u)");
    };
    let pass = if password_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match password {
            Some(p) => {
                eprintln!(
                    "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
                );
                p.to_string()
            }
            None => bail!("Password is required (-p or --password-stdin)"),
        }
    };
    let body = json!({ "username": user, "password": pass, "serveraddress": key });
    c.post_json("/auth", &body).await?;
    let mut cfg = read_config()?;
    let auths = cfg
        .as_object_mut()
        .context("config.json is not a JSON object")?
        .entry("auths")
        .or_insert_with(|| json!({}));
    match helper_for(&read_config()?, &key) {
        // The helper keeps the secret; config.json only names the registry.
        Some(h) => {
            let input = json!({ "ServerURL": key, "Username": user, "Secret": pass });
            let out = run_helper(&h, "store", &serde_json::to_vec(&input)?)?;
            if !out.status.success() {
                bail!(
                    "error storing credentials with docker-credential-{h}: {}",
                    String::from_utf8_lossy(&out.stdout).trim()
                );
            }
            auths[&key] = json!({});
        }
        None => {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            auths[&key] = json!({ "auth": auth });
        }
    }
    write_config(&cfg)?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(server: Option<&str>) -> Result<i32> {
    let key = match server {
        None | Some("docker.io") | Some("index.docker.io") => HUB_KEY.to_string(),
        Some(s) => s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    };
    let mut cfg = read_config()?;
    if let Some(h) = helper_for(&cfg, &key) {
        let _ = run_helper(&h, "erase", key.as_bytes())?;
    }
    let removed = cfg
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(&key))
        .is_some();
    if removed {
        write_config(&cfg)?;
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_like_docker() {
        assert!(bar(0, 100).starts_with("[>"));
        assert!(bar(50, 100).contains("=>"));
        assert!(bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
        assert!(bar(12_300_000, 60_000_000).ends_with("12.3MB/60.0MB"));
    }

    #[test]
    fn names_split_and_registries_key_like_docker() {
        assert_eq!(split_tag("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            split_tag("localhost:5000/a:v1"),
            ("localhost:5000/a".into(), "v1".into())
        );
        assert_eq!(
            split_tag("localhost:5000/a"),
            ("localhost:5000/a".into(), "latest".into())
        );
        assert_eq!(split_tag("a@sha256:00"), ("a".into(), "sha256:00".into()));
        assert_eq!(registry_key("busybox"), HUB_KEY);
        assert_eq!(registry_key("me/app"), HUB_KEY);
        assert_eq!(registry_key("127.0.0.1:5000/app"), "127.0.0.1:5000");
    }
}
