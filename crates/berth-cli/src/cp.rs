//! `berth cp`: copies between a container and the host as the docker CLI does,
//! through the daemon's archive endpoints (a tar each way). The container side
//! is resolved by the daemon inside the container's root; the host side is
//! unpacked here entry by entry, never outside the destination.

use crate::client::{enc, from_reader, Client, DaemonError};
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Args)]
pub struct CpOpts {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub source: String,
    pub destination: String,
}

/// `CONTAINER:PATH` splits at the first colon, unless the part before it looks
/// like a local path (a colon in a file name).
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => (Some(c), p),
        _ => (None, arg),
    }
}

/// The daemon's stat of a path in the container, or None when it does not exist.
async fn stat(c: &Client, container: &str, path: &str) -> Result<Option<serde_json::Value>> {
    let q = format!("/containers/{}/archive?path={}", enc(container), enc(path));
    match c
        .request(
            Method::HEAD,
            &q,
            crate::client::full(bytes::Bytes::new()),
            "text/plain",
        )
        .await
    {
        Ok(resp) => Ok(Some(path_stat(resp.headers())?)),
        Err(e) => match e.downcast_ref::<DaemonError>() {
            Some(d) if d.status == StatusCode::NOT_FOUND && d.message.is_empty() => Ok(None),
            Some(d)
                if d.status == StatusCode::NOT_FOUND
                    && d.message.contains("No such container:path") =>
            {
                Ok(None)
            }
            _ => Err(e),
        },
    }
}

fn path_stat(h: &hyper::HeaderMap) -> Result<serde_json::Value> {
    let raw = h
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the daemon sent no path stat"))?;
    let json = base64::engine::general_purpose::STANDARD.decode(raw)?;
    Ok(serde_json::from_slice(&json)?)
}

fn is_dir(st: &serde_json::Value) -> bool {
    // Go's os.FileMode: the directory bit is the top one.
    st["mode"].as_u64().is_some_and(|m| m & (1 << 31) != 0)
}

pub async fn cp(c: &Client, o: &CpOpts) -> Result<i32> {
    match (split(&o.source), split(&o.destination)) {
        ((Some(_), _), (Some(_), _)) => {
            bail!("copying between containers is not supported")
        }
        ((None, _), (None, _)) => bail!("must specify at least one container source"),
        ((Some(ctr), src), (None, dst)) => from_container(c, o, ctr, src, dst).await,
        ((None, src), (Some(ctr), dst)) => to_container(c, o, src, ctr, dst).await,
    }
}

/// A relative path inside the archive: its components, or None for anything that
/// could leave the destination.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

async fn from_container(c: &Client, o: &CpOpts, ctr: &str, src: &str, dst: &str) -> Result<i32> {
    let q = format!("/containers/{}/archive?path={}", enc(ctr), enc(src));
    let resp = c.get(&q).await?;
    let st = path_stat(resp.headers())?;
    let body = resp.into_body().collect().await?.to_bytes();
    if dst == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&body)?;
        return Ok(0);
    }
    let src_dir = is_dir(&st);
    let contents_only = src.ends_with("/.");
    let dst_path = Path::new(dst);
    // Where the archive goes, and what its top entry becomes.
    let (into, rename): (PathBuf, Option<String>) = match std::fs::metadata(dst_path) {
        Ok(m) if m.is_dir() => (dst_path.to_path_buf(), None),
        Ok(_) if src_dir => bail!("cannot copy a directory to a file: {dst}"),
        Ok(_) => (
            dst_path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            Some(file_name(dst_path)?),
        ),
        Err(_) if dst.ends_with('/') && !src_dir => {
            bail!("destination directory {dst} does not exist")
        }
        Err(_) => {
            let parent = dst_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!("destination directory {} does not exist", parent.display());
            }
            (parent.to_path_buf(), Some(file_name(dst_path)?))
        }
    };
    // The archive's entries under their new names (the top entry renamed, or
    // dropped for `SRC/.`), then unpacked the tar crate's careful way: no entry
    // lands outside `into`, also through links made by earlier entries.
    let mut renamed = tar::Builder::new(Vec::new());
    let mut copied = 0u64;
    let top_name = st["name"].as_str().unwrap_or("").to_string();
    // An entry's path below the copied item ("" for the item itself): the
    // archive names the item by its base name, or by "." for `SRC/.`.
    let below = |p: &Path| -> PathBuf {
        let mut parts = p.components();
        match parts.clone().next() {
            Some(Component::Normal(n)) if n.to_string_lossy() == top_name => {
                parts.next();
                parts.collect()
            }
            _ => p.to_path_buf(),
        }
    };
    let join = |a: &Path, rest: &Path| -> PathBuf {
        if rest.as_os_str().is_empty() {
            a.to_path_buf()
        } else {
            a.join(rest)
        }
    };
    // Where an entry goes, relative to `into`; None: not copied (the directory
    // itself when only its contents go).
    let place = |p: &Path| -> Option<PathBuf> {
        let rest = below(p);
        match (contents_only && src_dir, &rename) {
            (true, None) if rest.as_os_str().is_empty() => None,
            (true, None) => Some(rest),
            (_, Some(r)) => Some(join(Path::new(r), &rest)),
            (false, None) => Some(join(Path::new(&top_name), &rest)),
        }
    };
    for e in tar::Archive::new(&body[..]).entries()? {
        let mut e = e?;
        let path = clean(&e.path()?).ok_or_else(|| anyhow!("unsafe path in the archive"))?;
        let Some(name) = place(&path) else { continue };
        let mut h = e.header().clone();
        copied += h.size().unwrap_or(0);
        match h.entry_type() {
            tar::EntryType::Symlink => {
                let target = e.link_name()?.map(|t| t.into_owned()).unwrap_or_default();
                renamed.append_link(&mut h, &name, target)?;
            }
            tar::EntryType::Link => {
                // A hard link names another entry of the archive: placed alike.
                let target = e.link_name()?.map(|t| t.into_owned()).unwrap_or_default();
                let t = clean(&target)
                    .and_then(|t| place(&t))
                    .ok_or_else(|| anyhow!("unsafe link in the archive"))?;
                renamed.append_link(&mut h, &name, t)?;
            }
            _ => renamed.append_data(&mut h, &name, &mut e)?,
        }
    }
    let renamed = renamed.into_inner()?;
    let mut a = tar::Archive::new(&renamed[..]);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_preserve_ownerships(o.archive);
    a.set_overwrite(true);
    a.unpack(&into)
        .with_context(|| format!("copying into {}", into.display()))?;
    if !o.quiet {
        eprintln!(
            "Successfully copied {} to {dst}",
            crate::images::human_size(copied as i64)
        );
    }
    Ok(0)
}

fn file_name(p: &Path) -> Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("invalid destination {}", p.display()))
}

async fn to_container(c: &Client, o: &CpOpts, src: &str, ctr: &str, dst: &str) -> Result<i32> {
    let put = |dir: &str| {
        format!(
            "/containers/{}/archive?path={}&noOverwriteDirNonDir=true&copyUIDGID={}",
            enc(ctr),
            enc(dir),
            u8::from(o.archive)
        )
    };
    if src == "-" {
        c.request(
            Method::PUT,
            &put(dst),
            from_reader(std::io::stdin()),
            "application/x-tar",
        )
        .await?;
        return Ok(0);
    }
    let src_path = Path::new(src);
    let meta = if o.follow_link {
        std::fs::metadata(src_path)
    } else {
        std::fs::symlink_metadata(src_path)
    }
    .with_context(|| format!("no such file or directory: {src}"))?;
    let contents_only = src.ends_with("/.");
    let (dir, name) = match stat(c, ctr, dst).await? {
        Some(st) if is_dir(&st) => (
            dst.to_string(),
            if contents_only {
                None
            } else {
                Some(file_name(src_path)?)
            },
        ),
        Some(_) if meta.is_dir() => bail!("cannot copy a directory to a file: {dst}"),
        Some(_) | None => {
            if dst.ends_with('/') && !meta.is_dir() {
                bail!("destination directory {dst} does not exist");
            }
            let trimmed = dst.trim_end_matches('/');
            let (parent, base) = trimmed.rsplit_once('/').unwrap_or((".", trimmed));
            let parent = if parent.is_empty() { "/" } else { parent };
            (parent.to_string(), Some(base.to_string()))
        }
    };
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(o.follow_link);
    let mut size = 0u64;
    if meta.is_dir() {
        match &name {
            Some(n) => b.append_dir_all(n, src_path)?,
            None => b.append_dir_all(".", src_path)?,
        }
        for e in walk(src_path) {
            size += e;
        }
    } else {
        let n = name
            .clone()
            .unwrap_or_else(|| file_name(src_path).unwrap_or_default());
        b.append_path_with_name(src_path, &n)?;
        size = meta.len();
    }
    let tar = b.into_inner()?;
    c.request(
        Method::PUT,
        &put(&dir),
        crate::client::full(tar),
        "application/x-tar",
    )
    .await?;
    if !o.quiet {
        eprintln!(
            "Successfully copied {} to {ctr}:{dst}",
            crate::images::human_size(size as i64)
        );
    }
    Ok(0)
}

/// The sizes of the regular files under `p`.
fn walk(p: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => out.extend(walk(&e.path())),
                Ok(t) if t.is_file() => out.push(e.metadata().map_or(0, |m| m.len())),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_split_as_the_docker_cli_does() {
        assert_eq!(split("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split("./a:b"), (None, "./a:b"));
        assert_eq!(split("/tmp/x"), (None, "/tmp/x"));
        assert_eq!(split("-"), (None, "-"));
        assert!(clean(Path::new("a/../../b")).is_none());
        assert_eq!(clean(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
    }
}
