//! `berth context`: the docker CLI's contexts, in its own store (so that each CLI
//! sees the other's): `contexts/meta/<sha256 of the name>/meta.json` with the
//! endpoint, `contexts/tls/<sha256>/docker/{ca,cert,key}.pem`, and
//! `currentContext` in config.json.

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ContextCmd {
    /// Create a context
    Create {
        /// Description of the context
        #[arg(long)]
        description: Option<String>,
        /// set the docker endpoint (host=...,ca=...,cert=...,key=...,skip-tls-verify=...)
        #[arg(long)]
        docker: Option<String>,
        /// create context from a named context
        #[arg(long)]
        from: Option<String>,
        name: String,
    },
    /// List contexts
    #[command(alias = "list")]
    Ls {
        /// Format the output
        #[arg(long)]
        format: Option<String>,
        /// Only show context names
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Set the current docker context
    Use { name: String },
    /// Remove one or more contexts
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of a context in use
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Display detailed information on one or more contexts
    Inspect {
        /// Format the output using the given Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        names: Vec<String>,
    },
    /// Print the name of the current context
    Show,
}

fn id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(name.as_bytes()))
}

fn store() -> PathBuf {
    crate::client::docker_config_dir().join("contexts")
}

fn meta_path(name: &str) -> PathBuf {
    store().join("meta").join(id(name)).join("meta.json")
}

fn tls_dir(name: &str) -> PathBuf {
    store().join("tls").join(id(name)).join("docker")
}

/// The context in use, as the docker CLI resolves it: "default" when a host is
/// set in the environment, else DOCKER_CONTEXT, else config.json's.
fn current() -> String {
    if ["BERTH_HOST", "DOCKER_HOST"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
    {
        return "default".into();
    }
    std::env::var("DOCKER_CONTEXT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(crate::client::current_context)
        .unwrap_or_else(|| "default".into())
}

/// The default context: the environment's host or berth's socket.
fn default_context() -> Value {
    json!({
        "Name": "default",
        "Metadata": {"Description": "Current DOCKER_HOST based configuration"},
        "Endpoints": {"docker": {"Host": crate::client::Client::host(None), "SkipTLSVerify": false}},
        "TLSMaterial": {},
        "Storage": {"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"},
    })
}

fn load(name: &str) -> Result<Value> {
    if name == "default" {
        return Ok(default_context());
    }
    let p = meta_path(name);
    let b = std::fs::read(&p).map_err(|_| anyhow!("context {name:?} does not exist"))?;
    let mut v: Value =
        serde_json::from_slice(&b).with_context(|| format!("reading {}", p.display()))?;
    let tls = tls_dir(name);
    let files: Vec<String> = ["ca.pem", "cert.pem", "key.pem"]
        .iter()
        .filter(|f| tls.join(f).exists())
        .map(|f| f.to_string())
        .collect();
    v["TLSMaterial"] = if files.is_empty() {
        json!({})
    } else {
        json!({"docker": files})
    };
    v["Storage"] = json!({
        "MetadataPath": p.parent().map(|d| d.display().to_string()).unwrap_or_default(),
        "TLSPath": tls.parent().map(|d| d.display().to_string()).unwrap_or_default(),
    });
    Ok(v)
}

/// Every stored context, by name.
fn all() -> Vec<Value> {
    let mut out = vec![default_context()];
    let mut named: Vec<Value> = std::fs::read_dir(store().join("meta"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("meta.json")).ok())
        .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter_map(|v| v["Name"].as_str().and_then(|n| load(n).ok()))
        .collect();
    named.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    out.extend(named);
    out
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.+-".contains(x))
}

pub fn context(cmd: ContextCmd) -> Result<i32> {
    match cmd {
        ContextCmd::Create {
            description,
            docker,
            from,
            name,
        } => create(&name, description, docker.as_deref(), from.as_deref()),
        ContextCmd::Ls { format, quiet } => {
            let cur = current();
            let list = all();
            if quiet {
                for c in &list {
                    println!("{}", c["Name"].as_str().unwrap_or(""));
                }
                return Ok(0);
            }
            let rows: Vec<Value> = list
                .iter()
                .map(|c| {
                    let n = c["Name"].as_str().unwrap_or("").to_string();
                    json!({
                        "Name": if n == cur && format.is_none() { format!("{n} *") } else { n.clone() },
                        "Current": n == cur,
                        "Description": c["Metadata"]["Description"].as_str().unwrap_or(""),
                        "DockerEndpoint": c["Endpoints"]["docker"]["Host"].as_str().unwrap_or(""),
                        "Error": "",
                    })
                })
                .collect();
            let headers = json!({"Name": "NAME", "Current": "", "Description": "DESCRIPTION", "DockerEndpoint": "DOCKER ENDPOINT", "Error": "ERROR"});
            let default = "table {{.Name}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}";
            crate::format::print_rows(format.as_deref(), default, &headers, &rows)?;
            Ok(0)
        }
        ContextCmd::Use { name } => {
            if name != "default" {
                load(&name)?;
            }
            let cfg = crate::client::docker_config_dir().join("config.json");
            let mut v: Value = std::fs::read(&cfg)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_else(|| json!({}));
            if name == "default" {
                if let Some(m) = v.as_object_mut() {
                    m.remove("currentContext");
                }
            } else {
                v["currentContext"] = json!(name);
            }
            if let Some(dir) = cfg.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&cfg, serde_json::to_vec_pretty(&v)?)
                .with_context(|| format!("writing {}", cfg.display()))?;
            println!("{name}");
            eprintln!("Current context is now \"{name}\"");
            Ok(0)
        }
        ContextCmd::Rm { force, names } => {
            let cur = current();
            let mut code = 0;
            for n in names {
                if n == "default" {
                    eprintln!(
                        "failed to remove context default: default context cannot be removed"
                    );
                    code = 1;
                    continue;
                }
                if n == cur && !force {
                    eprintln!("failed to remove context {n}: context {n:?} is in use, set -f flag to force remove");
                    code = 1;
                    continue;
                }
                let meta = meta_path(&n);
                if !meta.exists() {
                    eprintln!("failed to remove context {n}: context {n:?} does not exist");
                    code = 1;
                    continue;
                }
                let _ = std::fs::remove_dir_all(meta.parent().expect("a directory"));
                let _ = std::fs::remove_dir_all(tls_dir(&n).parent().expect("a directory"));
                println!("{n}");
            }
            Ok(code)
        }
        ContextCmd::Inspect { format, names } => {
            let names = if names.is_empty() {
                vec![current()]
            } else {
                names
            };
            let list = names.iter().map(|n| load(n)).collect::<Result<Vec<_>>>()?;
            match format {
                Some(f) => {
                    let t = crate::format::Template::parse(&f)?;
                    for c in &list {
                        println!("{}", t.render(c)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&list)?),
            }
            Ok(0)
        }
        ContextCmd::Show => {
            println!("{}", current());
            Ok(0)
        }
    }
}

fn create(
    name: &str,
    description: Option<String>,
    docker: Option<&str>,
    from: Option<&str>,
) -> Result<i32> {
    if !valid_name(name) || name == "default" {
        bail!("context name {name:?} is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\"");
    }
    if meta_path(name).exists() {
        bail!("context {name:?} already exists");
    }
    let mut host = crate::client::Client::host(None);
    let mut skip = false;
    let mut tls_files: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(src) = from {
        let v = load(src)?;
        host = v["Endpoints"]["docker"]["Host"]
            .as_str()
            .unwrap_or("")
            .to_string();
        skip = v["Endpoints"]["docker"]["SkipTLSVerify"]
            .as_bool()
            .unwrap_or(false);
        if src != "default" {
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                let p = tls_dir(src).join(f);
                if p.exists() {
                    tls_files.push((f, p));
                }
            }
        }
    }
    if let Some(spec) = docker {
        for kv in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid docker endpoint option {kv:?}: want key=value"))?;
            match k {
                "host" => host = v.to_string(),
                "ca" => tls_files.push(("ca.pem", PathBuf::from(v))),
                "cert" => tls_files.push(("cert.pem", PathBuf::from(v))),
                "key" => tls_files.push(("key.pem", PathBuf::from(v))),
                "skip-tls-verify" => {
                    skip = v
                        .parse()
                        .map_err(|_| anyhow!("invalid value for skip-tls-verify: {v}"))?
                }
                "from" => {
                    let v = load(v)?;
                    host = v["Endpoints"]["docker"]["Host"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                }
                other => bail!("unrecognized config key: {other}"),
            }
        }
    }
    // The endpoint must be one berth (and the docker CLI) can reach.
    crate::client::Client::new(Some(&host), &crate::client::TlsOpts::default())
        .map_err(|e| anyhow!("unable to create docker endpoint config: {e}"))?;
    let meta = json!({
        "Name": name,
        "Metadata": {"Description": description.unwrap_or_default()},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}},
    });
    let mp = meta_path(name);
    std::fs::create_dir_all(mp.parent().expect("a directory"))?;
    if !tls_files.is_empty() {
        let dir = tls_dir(name);
        std::fs::create_dir_all(&dir)?;
        for (f, src) in &tls_files {
            std::fs::copy(src, dir.join(f))
                .with_context(|| format!("reading {}", src.display()))?;
            std::fs::set_permissions(
                dir.join(f),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )?;
        }
    }
    std::fs::write(&mp, serde_json::to_vec(&meta)?)?;
    println!("{name}");
    eprintln!("Successfully created context \"{name}\"");
    Ok(0)
}
