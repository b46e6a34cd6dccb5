//! Storage on the command line: `run`/`create`'s `-v`, `--mount`, `--tmpfs`,
//! `--read-only`, `--volumes-from`, and the `volume` commands.

use crate::client::{enc, Client};
use crate::format::print_rows;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Args, Clone, Default)]
pub struct StorageOpts {
    /// Bind mount a volume (src:dst[:opts], or a path for an anonymous volume)
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,...)
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory (path[:options])
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
}

/// Docker's size suffixes for `tmpfs-size`.
fn size(v: &str) -> Result<i64> {
    berth_api::parse_size(v).with_context(|| format!("invalid size: '{v}'"))
}

/// One `--mount` value: comma-separated key=value fields, as the docker CLI reads them.
pub fn parse_mount(spec: &str) -> Result<Value> {
    let mut m = Map::new();
    let mut bind = Map::new();
    let mut vol = Map::new();
    let mut tmpfs = Map::new();
    let mut driver = Map::new();
    let mut kind = "volume".to_string();
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.to_string()),
            None => (field.trim().to_ascii_lowercase(), String::new()),
        };
        let flag = |v: &str| -> Result<bool> {
            match v {
                "" | "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => bail!("invalid value for {k}: {v}"),
            }
        };
        match k.as_str() {
            "type" => kind = v,
            "source" | "src" => {
                m.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(flag(&v)?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(v));
            }
            "bind-nonrecursive" | "bind-recursive" if k == "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(flag(&v)?));
            }
            "bind-recursive" => {
                bind.insert("NonRecursive".into(), json!(v == "disabled"));
            }
            "volume-nocopy" | "volume-no-copy" => {
                vol.insert("NoCopy".into(), json!(flag(&v)?));
            }
            "volume-driver" => {
                driver.insert("Name".into(), json!(v));
            }
            "volume-opt" | "volume-label" => {
                let (key, value) = v
                    .split_once('=')
                    .with_context(|| format!("invalid {k} {v:?}: key=value"))?;
                let (obj, field) = if k == "volume-opt" {
                    (&mut driver, "Options")
                } else {
                    (&mut vol, "Labels")
                };
                let entry = obj.entry(field).or_insert_with(|| json!({}));
                entry[key] = json!(value);
            }
            "volume-subpath" => {
                vol.insert("Subpath".into(), json!(v));
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(size(&v)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(&v, 8)
                    .with_context(|| format!("invalid tmpfs-mode {v:?}: octal"))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            "consistency" => {}
            "" => {}
            _ => bail!("invalid field '{k}' must be a key=value pair"),
        }
    }
    m.insert("Type".into(), json!(kind));
    if !driver.is_empty() {
        vol.insert("DriverConfig".into(), Value::Object(driver));
    }
    if !bind.is_empty() {
        m.insert("BindOptions".into(), Value::Object(bind));
    }
    if !vol.is_empty() {
        m.insert("VolumeOptions".into(), Value::Object(vol));
    }
    if !tmpfs.is_empty() {
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    Ok(Value::Object(m))
}

impl StorageOpts {
    /// Fills the create request's storage fields, as the docker CLI does.
    pub fn apply(
        &self,
        config: &mut berth_api::ContainerConfig,
        hc: &mut berth_api::HostConfig,
    ) -> Result<()> {
        let mut binds = Vec::new();
        let mut anon = config.volumes.clone().unwrap_or_default();
        for v in &self.volume {
            // A bare path is an anonymous volume; anything else goes as a bind.
            if v.starts_with('/') && !v.contains(':') {
                anon.insert(v.clone(), json!({}));
            } else {
                binds.push(v.clone());
            }
        }
        if !anon.is_empty() {
            config.volumes = Some(anon);
        }
        if !binds.is_empty() {
            hc.other.insert("Binds".into(), json!(binds));
        }
        if !self.mount.is_empty() {
            let mounts = self
                .mount
                .iter()
                .map(|m| parse_mount(m))
                .collect::<Result<Vec<_>>>()?;
            hc.other.insert("Mounts".into(), json!(mounts));
        }
        if !self.tmpfs.is_empty() {
            let map: BTreeMap<String, String> = self
                .tmpfs
                .iter()
                .map(|t| {
                    let (p, o) = t.split_once(':').unwrap_or((t, ""));
                    (p.to_string(), o.to_string())
                })
                .collect();
            hc.other.insert("Tmpfs".into(), json!(map));
        }
        if self.read_only {
            hc.other.insert("ReadonlyRootfs".into(), json!(true));
        }
        if !self.volumes_from.is_empty() {
            hc.other
                .insert("VolumesFrom".into(), json!(self.volumes_from));
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create {
        /// Specify volume driver name
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Provide filter values (e.g. "dangling=true")
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        /// Only display volume names
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output using a custom template
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused local volumes
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "label=<label>")
        #[arg(long)]
        filter: Vec<String>,
    },
}

fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

pub async fn volume(c: &Client, cmd: VolumeCmd) -> Result<i32> {
    match cmd {
        VolumeCmd::Create {
            driver,
            label,
            opt,
            name,
        } => {
            let body = json!({ "Name": name.unwrap_or_default(), "Driver": driver, "DriverOpts": crate::format::kv_map(&opt), "Labels": crate::format::kv_map(&label) });
            let resp = c.post_json("/volumes/create", &body).await?;
            let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
        }
        VolumeCmd::Ls {
            filter,
            quiet,
            format,
        } => {
            let v: Value = c
                .get_json(&format!(
                    "/volumes?filters={}",
                    crate::containers::filters_param(&filter)?
                ))
                .await?;
            let rows: Vec<Value> = v["Volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|v| json!({ "Driver": v["Driver"], "Name": v["Name"], "Mountpoint": v["Mountpoint"], "Scope": v["Scope"], "Labels": v["Labels"] }))
                .collect();
            if quiet {
                for r in rows {
                    println!("{}", r["Name"].as_str().unwrap_or(""));
                }
                return Ok(0);
            }
            let headers = json!({"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE", "Labels": "LABELS"});
            print_rows(
                format.as_deref(),
                "table {{.Driver}}\t{{.Name}}",
                &headers,
                &rows,
            )?;
        }
        VolumeCmd::Inspect { format, volumes } => {
            let paths: Vec<String> = volumes
                .iter()
                .map(|n| format!("/volumes/{}", enc(n)))
                .collect();
            return crate::format::inspect_each(c, &paths, format.as_deref()).await;
        }
        VolumeCmd::Rm { force, volumes } => {
            return crate::containers::each(&volumes, true, |n| async move {
                c.delete(&format!("/volumes/{}?force={force}", enc(&n)))
                    .await
                    .map(drop)
            })
            .await;
        }
        VolumeCmd::Prune {
            all,
            force: _,
            filter,
        } => {
            let mut filter = filter;
            if all {
                filter.push("all=true".into());
            }
            let v = crate::format::prune(
                c,
                "/volumes/prune",
                &filter,
                "VolumesDeleted",
                "Deleted Volumes:",
            )
            .await?;
            if v["VolumesDeleted"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_flags_like_docker() {
        let m = parse_mount("type=bind,source=/srv,target=/data,readonly,bind-propagation=rslave")
            .unwrap();
        assert_eq!(
            m,
            json!({"Type": "bind", "Source": "/srv", "Target": "/data", "ReadOnly": true, "BindOptions": {"Propagation": "rslave"}})
        );
        let t = parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            t["TmpfsOptions"],
            json!({"SizeBytes": 1048576, "Mode": 0o1770})
        );
        let v = parse_mount("src=cache,dst=/c,volume-nocopy").unwrap();
        assert_eq!(v["Type"], "volume");
        assert_eq!(v["VolumeOptions"]["NoCopy"], true);
        assert!(parse_mount("type=bind,colour=red").is_err());
        assert!(parse_mount("type=tmpfs,dst=/t,tmpfs-mode=9").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,readonly=maybe").is_err());
    }

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(2_000_000), "2MB");
    }
}
