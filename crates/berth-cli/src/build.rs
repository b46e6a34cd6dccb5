//! `berth build`: the context (a directory with its `.dockerignore`, a tar or a
//! Dockerfile on stdin) sent to `POST /build`, the steps printed as they come, and
//! the result written where `--iidfile` and `--output` ask.

use crate::client::{enc, from_reader, full, Client};
use anyhow::{bail, Context, Result};
use berth_api::JsonMessage;
use berth_build::ignore::Ignore;
use http_body_util::BodyExt;
use hyper::Method;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct BuildOpts {
    /// Name and optionally a tag (format: "name:tag")
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Set metadata for an image
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    network: Option<String>,
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long = "add-host")]
    add_hosts: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Type of progress output (auto, plain, tty, quiet)
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<String>,
    /// Output destination (format: "type=local,dest=path" or "type=tar,dest=path")
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Ulimit options
    #[arg(long = "ulimit")]
    ulimits: Vec<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")
    #[arg(long)]
    secret: Vec<String>,
    /// SSH agent socket or keys to expose to the build
    #[arg(long)]
    ssh: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// PATH, URL or - (a tar or a Dockerfile on stdin)
    context: String,
}

/// `64m`-style sizes.
fn bytes_of(s: &str) -> Result<i64> {
    let t = s.trim().to_lowercase();
    let (n, m) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t.as_str(), 1),
    };
    Ok(n.parse::<i64>()
        .with_context(|| format!("invalid size: {s:?}"))?
        * m)
}

/// The context directory's entries, `.dockerignore` applied (the Dockerfile and
/// `.dockerignore` themselves always go), parents before children.
fn context_entries(dir: &Path, dockerfile: &str) -> Result<Vec<(String, std::fs::Metadata)>> {
    let ignore_text = std::fs::read_to_string(dir.join(format!("{dockerfile}.dockerignore")))
        .or_else(|_| std::fs::read_to_string(dir.join(".dockerignore")))
        .unwrap_or_default();
    let ignore = Ignore::parse(&ignore_text)?;
    fn walk(
        out: &mut Vec<(String, std::fs::Metadata)>,
        root: &Path,
        rel: &str,
        ignore: &Ignore,
        keep: &[&str],
    ) -> Result<()> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let m = std::fs::symlink_metadata(root.join(&r))?;
            let excluded = ignore.excluded(&r) && !keep.contains(&r.as_str());
            if m.is_dir() {
                if excluded && !ignore.may_include_under(&r) {
                    continue;
                }
                if !excluded {
                    out.push((r.clone(), m));
                }
                walk(out, root, &r, ignore, keep)?;
            } else if !excluded && (m.is_file() || m.file_type().is_symlink()) {
                out.push((r, m));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&mut out, dir, "", &ignore, &[dockerfile, ".dockerignore"])?;
    Ok(out)
}

/// A tar of `paths` (relative to `dir`), and of `extra` (a Dockerfile from
/// elsewhere) when given.
fn tar_of(dir: &Path, paths: &[&str], extra: Option<(String, Vec<u8>)>) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for p in paths {
        b.append_path_with_name(dir.join(p), p)?;
    }
    if let Some((name, data)) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, &data[..])?;
    }
    Ok(b.into_inner()?)
}

/// A tar of `paths` written by a thread as it is sent (the request streams it
/// while the files are still being read).
fn streamed_tar(dir: &Path, paths: Vec<String>) -> Result<crate::client::BoxBody> {
    let (reader, writer) = std::io::pipe()?;
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, writer));
        b.follow_symlinks(false);
        for p in &paths {
            // The body then ends short and the daemon refuses the build; the
            // file at fault is named here.
            if let Err(e) = b.append_path_with_name(dir.join(p), p) {
                eprintln!("berth: reading {}: {e}", dir.join(p).display());
                return;
            }
        }
        let _ = b.into_inner().map(|mut w| std::io::Write::flush(&mut w));
    });
    Ok(from_reader(reader))
}

/// The daemon's name for a context directory kept between builds.
fn context_key(dir: &Path) -> Result<String> {
    use std::hash::{Hash, Hasher};
    let real = std::fs::canonicalize(dir)?;
    // Two independent 64-bit hashes of the path: a name, not a secret.
    let mut a = std::collections::hash_map::DefaultHasher::new();
    real.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    ("berth-context", &real).hash(&mut b);
    Ok(format!("{:016x}{:016x}", a.finish(), b.finish()))
}

/// The entries as the daemon's list wants them.
fn manifest(entries: &[(String, std::fs::Metadata)]) -> serde_json::Value {
    use std::os::unix::fs::MetadataExt;
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|(p, m)| {
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else {
                "file"
            };
            serde_json::json!({
                "path": p,
                "kind": kind,
                "mode": m.mode() & 0o7777,
                "size": if ft.is_dir() { 0 } else { m.size() },
                "mtime": m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            })
        })
        .collect();
    serde_json::json!({ "Entries": list })
}

fn is_tar(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// A key=value list (`--label`, `--build-arg`: a bare key takes the environment's value).
fn pairs(list: &[String], from_env: bool) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for s in list {
        match s.split_once('=') {
            Some((k, v)) => {
                m.insert(k.into(), v.into());
            }
            None if from_env => {
                if let Ok(v) = std::env::var(s) {
                    m.insert(s.clone(), v.into());
                }
            }
            None => {
                m.insert(s.clone(), "".into());
            }
        }
    }
    m
}

pub async fn build(c: &Client, o: &BuildOpts) -> Result<i32> {
    let mut offer = crate::session::Offer::default();
    for spec in &o.secret {
        offer.secret(spec)?;
    }
    for spec in &o.ssh {
        offer.ssh(spec)?;
    }

    let quiet = o.quiet || o.progress == "quiet";
    // The live view where a person watches (BuildKit draws it on stderr).
    let live = !quiet
        && (o.progress == "tty" || (o.progress == "auto" && std::io::stderr().is_terminal()));
    if !["auto", "plain", "tty", "quiet"].contains(&o.progress.as_str()) {
        bail!(
            "invalid progress mode {:?}: auto, plain, tty or quiet",
            o.progress
        );
    }
    let mut dockerfile = o.file.clone().unwrap_or_else(|| "Dockerfile".into());
    let body = if o.context == "-" {
        if std::io::stdin().is_terminal() {
            bail!("the context on stdin is missing: pipe a tar or a Dockerfile");
        }
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data)?;
        Body::Tar(if is_tar(&data) {
            data
        } else {
            dockerfile = "Dockerfile".into();
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, "Dockerfile", &data[..])?;
            b.into_inner()?
        })
    } else if o.context.contains("://") || o.context.starts_with("git@") {
        // The daemon fetches a remote context (a repository, a tarball, a
        // Dockerfile) itself.
        Body::Remote(o.context.clone())
    } else {
        let dir = PathBuf::from(&o.context);
        if !dir.is_dir() {
            bail!("unable to prepare context: path {:?} not found", o.context);
        }
        // A Dockerfile outside the context (or on stdin) goes in under a name of its own.
        let extra = if dockerfile == "-" {
            let mut data = Vec::new();
            std::io::stdin().read_to_end(&mut data)?;
            dockerfile = format!(".dockerfile.{:012x}", rand_u64());
            Some((dockerfile.clone(), data))
        } else {
            let given = PathBuf::from(&dockerfile);
            let full = if given.is_absolute() || o.file.is_some() {
                given.clone()
            } else {
                dir.join(&given)
            };
            let full = std::fs::canonicalize(&full).with_context(|| {
                format!("unable to prepare context: the Dockerfile {dockerfile:?} cannot be read")
            })?;
            let root = std::fs::canonicalize(&dir)?;
            match full.strip_prefix(&root) {
                Ok(rel) => {
                    dockerfile = rel.to_string_lossy().into_owned();
                    None
                }
                Err(_) => {
                    let data = std::fs::read(&full)?;
                    dockerfile = format!(".dockerfile.{:012x}", rand_u64());
                    Some((dockerfile.clone(), data))
                }
            }
        };
        match extra {
            // Only what the daemon lacks goes, when it keeps contexts.
            None => Body::Kept(dir),
            Some(extra) => {
                let entries = context_entries(&dir, &dockerfile)?;
                let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
                Body::Tar(tar_of(&dir, &paths, Some(extra))?)
            }
        }
    };
    let mut q = format!("/build?dockerfile={}", enc(&dockerfile));
    for t in &o.tags {
        q.push_str(&format!("&t={}", enc(t)));
    }
    let args = pairs(&o.build_args, true);
    if !args.is_empty() {
        q.push_str(&format!(
            "&buildargs={}",
            enc(&serde_json::Value::Object(args).to_string())
        ));
    }
    let labels = pairs(&o.labels, false);
    if !labels.is_empty() {
        q.push_str(&format!(
            "&labels={}",
            enc(&serde_json::Value::Object(labels).to_string())
        ));
    }
    for (k, v) in [
        ("target", o.target.as_deref()),
        ("networkmode", o.network.as_deref()),
        ("platform", o.platform.as_deref()),
    ] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    if !o.add_hosts.is_empty() {
        q.push_str(&format!("&extrahosts={}", enc(&o.add_hosts.join(","))));
    }
    if let Some(s) = &o.shm_size {
        q.push_str(&format!("&shmsize={}", bytes_of(s)?));
    }
    if let Some(m) = &o.memory {
        q.push_str(&format!("&memory={}", bytes_of(m)?));
    }
    if !o.ulimits.is_empty() {
        let mut list = Vec::new();
        for u in &o.ulimits {
            let (name, limits) = u
                .split_once('=')
                .with_context(|| format!("invalid ulimit {u:?}"))?;
            let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
            list.push(serde_json::json!({ "Name": name, "Soft": soft.parse::<i64>()?, "Hard": hard.parse::<i64>()? }));
        }
        q.push_str(&format!(
            "&ulimits={}",
            enc(&serde_json::Value::Array(list).to_string())
        ));
    }
    if o.no_cache {
        q.push_str("&nocache=1");
    }
    if !o.cache_from.is_empty() {
        q.push_str(&format!(
            "&cachefrom={}",
            enc(&serde_json::json!(o.cache_from).to_string())
        ));
    }
    if o.pull {
        q.push_str("&pull=1");
    }
    if live {
        q.push_str("&berthprogress=1");
    }
    // Secrets and agents come through a session berthd calls back on; it ends
    // with the build.
    let _session = if offer.is_empty() {
        None
    } else {
        let s = crate::session::open(c, offer).await?;
        q.push_str(&format!("&session={}", enc(&s.id)));
        Some(s)
    };
    let resp = send(c, &q, body, &dockerfile).await?;
    let mut body = resp.into_body();
    let mut pending = Vec::new();
    let mut id = None;
    let mut failed = None;
    let mut view = live.then(crate::progress::View::default);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = tick.tick() => {
                if let Some(v) = view.as_mut() {
                    v.draw(false);
                }
                continue;
            }
        };
        let Some(frame) = frame else { break };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(p) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=p).collect();
            let m: JsonMessage =
                serde_json::from_slice(&line).context("decoding the build's output")?;
            if let Some(e) = m.error_detail.map(|d| d.message).or(m.error) {
                failed = Some(e);
            } else if let Some(s) = m.stream {
                if !quiet && view.is_none() {
                    print!("{s}");
                }
            }
            if let Some(aux) = m.aux {
                if let Some(i) = aux.get("ID").and_then(|v| v.as_str()) {
                    id = Some(i.to_string());
                }
                if let (Some(v), Some(step)) = (view.as_mut(), aux.get("berth.step")) {
                    v.event(step);
                    v.draw(false);
                }
            }
        }
    }
    if let Some(v) = view.as_mut() {
        v.draw(true);
    }
    if let Some(e) = failed {
        eprintln!("ERROR: {e}");
        return Ok(1);
    }
    let Some(id) = id else {
        bail!("the daemon ended the build without an image")
    };
    if quiet {
        println!("{id}");
    } else if view.is_some() {
        eprintln!(" => writing image {id}");
        for t in &o.tags {
            eprintln!(" => naming to {t}");
        }
    }
    if let Some(f) = &o.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing {f}"))?;
    }
    for out in &o.outputs {
        export(c, &id, out).await?;
    }
    Ok(0)
}

/// What goes with the build: a whole context, or a directory the daemon keeps.
enum Body {
    Tar(Vec<u8>),
    Kept(PathBuf),
    Remote(String),
}

/// Sends the build; for a kept context, first learns which files the daemon
/// lacks (a daemon that keeps none gets the whole context, as Docker's does).
async fn send(
    c: &Client,
    q: &str,
    body: Body,
    dockerfile: &str,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let dir = match body {
        Body::Remote(url) => {
            return c
                .request(
                    Method::POST,
                    &format!("{q}&remote={}", enc(&url)),
                    full(bytes::Bytes::new()),
                    "application/x-tar",
                )
                .await
        }
        Body::Tar(t) => {
            return c
                .request(
                    Method::POST,
                    q,
                    from_reader(std::io::Cursor::new(t)),
                    "application/x-tar",
                )
                .await
        }
        Body::Kept(dir) => dir,
    };
    let key = context_key(&dir)?;
    for _ in 0..3 {
        let entries = context_entries(&dir, dockerfile)?;
        let sync = c
            .request(
                Method::POST,
                &format!("/build/contexts/{key}"),
                full(serde_json::to_vec(&manifest(&entries))?),
                "application/json",
            )
            .await;
        let answer: serde_json::Value = match sync {
            Ok(r) => serde_json::from_slice(&r.into_body().collect().await?.to_bytes())?,
            Err(_) => {
                let paths = entries.into_iter().map(|(p, _)| p).collect();
                return c
                    .request(
                        Method::POST,
                        q,
                        streamed_tar(&dir, paths)?,
                        "application/x-tar",
                    )
                    .await;
            }
        };
        let need: Vec<&str> = answer["Need"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        let generation = answer["Generation"].as_str().unwrap_or_default();
        let need = need.into_iter().map(String::from).collect();
        let kept = format!("{q}&berthcontext={key}&berthgeneration={}", enc(generation));
        match c
            .request(
                Method::POST,
                &kept,
                streamed_tar(&dir, need)?,
                "application/x-tar",
            )
            .await
        {
            // Another build of this context went in between: the list again.
            Err(e)
                if e.downcast_ref::<crate::client::DaemonError>()
                    .is_some_and(|d| d.status == hyper::StatusCode::CONFLICT) =>
            {
                continue
            }
            r => return r,
        }
    }
    bail!("the context kept changing while it was sent")
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
}

/// `--output type=local,dest=DIR` / `type=tar,dest=FILE` (or just `DIR`): the
/// image's filesystem, read through a container made for the purpose.
async fn export(c: &Client, id: &str, spec: &str) -> Result<()> {
    let mut kind = "local".to_string();
    let mut dest = None;
    if !spec.contains('=') {
        dest = Some(spec.to_string());
    } else {
        for kv in spec.split(',') {
            match kv.split_once('=') {
                Some(("type", v)) => kind = v.to_string(),
                Some(("dest", v)) => dest = Some(v.to_string()),
                _ => bail!("invalid output {spec:?}"),
            }
        }
    }
    let dest = dest.with_context(|| format!("output {spec:?} needs dest="))?;
    if kind != "local" && kind != "tar" {
        bail!("output type {kind:?}: berth writes local and tar outputs");
    }
    let created: serde_json::Value = {
        let resp = c
            .request(
                Method::POST,
                "/containers/create",
                full(serde_json::to_vec(
                    &serde_json::json!({ "Image": id, "Cmd": ["true"], "Entrypoint": [] }),
                )?),
                "application/json",
            )
            .await?;
        serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?
    };
    let cid = created["Id"]
        .as_str()
        .context("no container id")?
        .to_string();
    let result = async {
        let resp = c.get(&format!("/containers/{cid}/export")).await?;
        let data = resp.into_body().collect().await?.to_bytes();
        if kind == "tar" {
            if dest == "-" {
                use std::io::Write;
                std::io::stdout().write_all(&data)?;
            } else {
                std::fs::write(&dest, &data).with_context(|| format!("writing {dest}"))?;
            }
        } else {
            std::fs::create_dir_all(&dest)?;
            let mut a = tar::Archive::new(&data[..]);
            a.set_preserve_permissions(true);
            a.unpack(&dest)
                .with_context(|| format!("writing into {dest}"))?;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = c.delete(&format!("/containers/{cid}?force=1")).await;
    result
}
