//! `berth plugin`: Docker's managed plugins, as the docker CLI drives them
//! (privileges shown and asked for before an install or upgrade, then the pull,
//! the settings, the enable).

use crate::client::{enc, full, Client};
use crate::format::print_rows;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};
use std::io::Write;

#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// Create a plugin from a rootfs and configuration
    Create {
        name: String,
        /// A directory with config.json and rootfs/
        dir: std::path::PathBuf,
    },
    /// Disable a plugin
    Disable {
        /// Force the disable of an active plugin
        #[arg(short = 'f', long)]
        force: bool,
        name: String,
    },
    /// Enable a plugin
    Enable {
        /// HTTP client timeout (in seconds)
        #[arg(long, default_value_t = 30)]
        timeout: u32,
        name: String,
    },
    /// Display detailed information on one or more plugins
    Inspect {
        /// Format output using a custom template
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        plugins: Vec<String>,
    },
    /// Install a plugin
    Install {
        /// Local name for plugin
        #[arg(long)]
        alias: Option<String>,
        /// Do not enable the plugin on install
        #[arg(long)]
        disable: bool,
        /// Grant all permissions necessary to run the plugin
        #[arg(long = "grant-all-permissions")]
        grant: bool,
        plugin: String,
        /// KEY=VALUE settings
        args: Vec<String>,
    },
    /// List plugins
    #[command(alias = "list")]
    Ls {
        /// Provide filter values (e.g. "enabled=true")
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
        /// Don't truncate output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Only display plugin IDs
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Push a plugin to a registry
    Push { name: String },
    /// Remove one or more plugins
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of an active plugin
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        plugins: Vec<String>,
    },
    /// Change settings for a plugin
    Set {
        name: String,
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Upgrade an existing plugin
    Upgrade {
        /// Grant all permissions necessary to run the plugin
        #[arg(long = "grant-all-permissions")]
        grant: bool,
        /// Do not check if specified remote plugin matches existing plugin image
        #[arg(long = "skip-remote-check")]
        skip_remote_check: bool,
        name: String,
        remote: Option<String>,
    },
}

/// `name` with Docker's `:latest` when it has no tag.
fn tagged(name: &str) -> String {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    if name.contains('@') || name[slash..].contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Shows what `remote` asks of the host and, unless granted beforehand, asks
/// the user; returns the privileges to send back.
async fn privileges(c: &Client, remote: &str, grant: bool) -> Result<Value> {
    let mut headers = Vec::new();
    if let Some(a) = crate::registry::auth_header(remote)? {
        headers.push(("X-Registry-Auth", a));
    }
    let resp = c
        .request_with(
            Method::GET,
            &format!("/plugins/privileges?remote={}", enc(remote)),
            &headers,
        )
        .await?;
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    let privileges: Value = serde_json::from_slice(&body).context("the daemon's privileges")?;
    let list = privileges.as_array().cloned().unwrap_or_default();
    if !grant && !list.is_empty() {
        println!("Plugin \"{remote}\" is requesting the following privileges:");
        for p in &list {
            let values: Vec<&str> = p["Value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            println!(
                " - {}: [{}]",
                p["Name"].as_str().unwrap_or(""),
                values.join(" ")
            );
        }
        print!("Do you grant the above permissions? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("permission denied");
        }
    }
    Ok(privileges)
}

pub async fn plugin(c: &Client, cmd: PluginCmd) -> Result<i32> {
    match cmd {
        PluginCmd::Create { name, dir } => {
            let mut tar = tar::Builder::new(Vec::new());
            tar.follow_symlinks(false);
            tar.append_path_with_name(dir.join("config.json"), "config.json")
                .with_context(|| format!("{}: config.json", dir.display()))?;
            tar.append_dir_all("rootfs", dir.join("rootfs"))
                .with_context(|| format!("{}: rootfs", dir.display()))?;
            let body = tar.into_inner()?;
            c.request(
                Method::POST,
                &format!("/plugins/create?name={}", enc(&name)),
                full(body),
                "application/x-tar",
            )
            .await?;
            println!("{name}");
        }
        PluginCmd::Disable { force, name } => {
            c.post(&format!("/plugins/{name}/disable?force={force}"))
                .await?;
            println!("{name}");
        }
        PluginCmd::Enable { timeout, name } => {
            c.post(&format!("/plugins/{name}/enable?timeout={timeout}"))
                .await?;
            println!("{name}");
        }
        PluginCmd::Inspect { format, plugins } => {
            let paths: Vec<String> = plugins
                .iter()
                .map(|p| format!("/plugins/{p}/json"))
                .collect();
            return crate::format::inspect_each(c, &paths, format.as_deref()).await;
        }
        PluginCmd::Install {
            alias,
            disable,
            grant,
            plugin,
            args,
        } => {
            let privileges = privileges(c, &plugin, grant).await?;
            let mut path = format!("/plugins/pull?remote={}", enc(&plugin));
            if let Some(a) = &alias {
                path.push_str(&format!("&name={}", enc(&tagged(a))));
            }
            let mut headers = Vec::new();
            if let Some(a) = crate::registry::auth_header(&plugin)? {
                headers.push(("X-Registry-Auth", a));
            }
            let resp = c
                .request_with_body(Method::POST, &path, &headers, full(privileges.to_string()))
                .await?;
            let name = resp
                .headers()
                .get("Docker-Plugin-Name")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .unwrap_or_else(|| tagged(alias.as_deref().unwrap_or(&plugin)));
            let code = crate::registry::follow(resp, false).await?;
            if code != 0 {
                return Ok(code);
            }
            if !args.is_empty() {
                c.post_json(&format!("/plugins/{name}/set"), &args).await?;
            }
            if !disable {
                c.post(&format!("/plugins/{name}/enable?timeout=0")).await?;
            }
            println!("Installed plugin {plugin}");
        }
        PluginCmd::Ls {
            filter,
            format,
            no_trunc,
            quiet,
        } => {
            let list: Value = c
                .get_json(&format!(
                    "/plugins?filters={}",
                    crate::containers::filters_param(&filter)?
                ))
                .await?;
            let rows: Vec<Value> = list
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let id = p["Id"].as_str().unwrap_or("").to_string();
                    let id = if no_trunc {
                        id
                    } else {
                        id.chars().take(12).collect()
                    };
                    json!({ "ID": id, "Name": p["Name"], "Description": p["Config"]["Description"],
                            "Enabled": p["Enabled"], "PluginReference": p["PluginReference"] })
                })
                .collect();
            if quiet {
                for r in rows {
                    println!("{}", r["ID"].as_str().unwrap_or(""));
                }
                return Ok(0);
            }
            let headers = json!({"ID": "ID", "Name": "NAME", "Description": "DESCRIPTION", "Enabled": "ENABLED", "PluginReference": "PLUGIN REFERENCE"});
            print_rows(
                format.as_deref(),
                "table {{.ID}}\t{{.Name}}\t{{.Description}}\t{{.Enabled}}",
                &headers,
                &rows,
            )?;
        }
        PluginCmd::Push { name } => {
            let mut headers = Vec::new();
            if let Some(a) = crate::registry::auth_header(&name)? {
                headers.push(("X-Registry-Auth", a));
            }
            let resp = c
                .request_with(Method::POST, &format!("/plugins/{name}/push"), &headers)
                .await?;
            return crate::registry::follow(resp, false).await;
        }
        PluginCmd::Rm { force, plugins } => {
            let mut code = 0;
            for p in plugins {
                match c.delete(&format!("/plugins/{p}?force={force}")).await {
                    Ok(_) => println!("{p}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        PluginCmd::Set { name, settings } => {
            c.post_json(&format!("/plugins/{name}/set"), &settings)
                .await?;
        }
        PluginCmd::Upgrade {
            grant,
            skip_remote_check,
            name,
            remote,
        } => {
            let current: Value = c.get_json(&format!("/plugins/{name}/json")).await?;
            let reference = current["PluginReference"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let remote = remote.unwrap_or_else(|| reference.clone());
            if !skip_remote_check && !reference.is_empty() && tagged(&remote) != reference {
                bail!(
                    "remote reference {remote} does not match the plugin's reference {reference}: use --skip-remote-check to upgrade anyway"
                );
            }
            let privileges = privileges(c, &remote, grant).await?;
            let mut headers = Vec::new();
            if let Some(a) = crate::registry::auth_header(&remote)? {
                headers.push(("X-Registry-Auth", a));
            }
            let resp = c
                .request_with_body(
                    Method::POST,
                    &format!("/plugins/{name}/upgrade?remote={}", enc(&remote)),
                    &headers,
                    full(privileges.to_string()),
                )
                .await?;
            let code = crate::registry::follow(resp, false).await?;
            if code == 0 {
                println!("Upgraded plugin {name} to {remote}");
            }
            return Ok(code);
        }
    }
    Ok(0)
}
