//! `berth diff`, `berth events` (also `system events`) and `berth system df`.

use crate::client::{enc, Client};
use crate::format::{self, Template};
use anyhow::{bail, Result};
use http_body_util::BodyExt;
use serde_json::Value;

/// `diff`: the container's changes, `C`/`A`/`D` and the path, as the daemon lists them.
pub async fn diff(c: &Client, container: &str) -> Result<i32> {
    let changes: Value = c
        .get_json(&format!("/containers/{}/changes", enc(container)))
        .await?;
    for ch in changes.as_array().into_iter().flatten() {
        let kind = match ch["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        println!("{kind} {}", ch["Path"].as_str().unwrap_or(""));
    }
    Ok(0)
}

/// Docker's default line for an event: time, type, action, actor and its
/// attributes in name order.
fn event_line(e: &Value) -> String {
    let nanos = e["timeNano"].as_i64().unwrap_or(0);
    let t = chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut attrs: Vec<(String, String)> = e["Actor"]["Attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    attrs.sort();
    let attrs: Vec<String> = attrs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut line = format!(
        "{t} {} {} {}",
        e["Type"].as_str().unwrap_or(""),
        e["Action"].as_str().unwrap_or(""),
        e["Actor"]["ID"].as_str().unwrap_or("")
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

/// `events`: what the daemon says happened (`--since`, `--until`, `--filter`,
/// `--format` with `json` or a template); follows until `--until` or forever.
pub async fn events(
    c: &Client,
    since: Option<&str>,
    until: Option<&str>,
    filters: &[String],
    format: Option<&str>,
) -> Result<i32> {
    let mut q = Vec::new();
    // Relative times ("10m") become timestamps here, as the docker CLI does.
    if let Some(s) = since {
        q.push(format!("since={}", crate::containers::time_arg(s)?));
    }
    if let Some(u) = until {
        q.push(format!("until={}", crate::containers::time_arg(u)?));
    }
    if !filters.is_empty() {
        let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for f in filters {
            let Some((k, v)) = f.split_once('=') else {
                bail!("invalid filter {f:?}: want key=value");
            };
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        q.push(format!("filters={}", enc(&serde_json::to_string(&m)?)));
    }
    let path = if q.is_empty() {
        "/events".to_string()
    } else {
        format!("/events?{}", q.join("&"))
    };
    let template = match format.filter(|f| !f.is_empty() && *f != "json") {
        Some(f) => Some(Template::parse(f)?),
        None => None,
    };
    let json = format == Some("json");
    let resp = c.get(&path).await?;
    let mut body = resp.into_body();
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(p) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=p).collect();
            let Ok(e) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let out = match &template {
                Some(t) => t.render(&e)?,
                None if json => serde_json::to_string(&e)?,
                None => event_line(&e),
            };
            println!("{out}");
        }
    }
    Ok(0)
}

/// `system df`: the space images, containers, volumes and the build cache take.
pub async fn df(c: &Client, verbose: bool, fmt: Option<&str>) -> Result<i32> {
    let v: Value = c.get_json("/system/df").await?;
    if verbose {
        return df_verbose(&v, fmt);
    }
    let size = |x: i64| crate::images::human_size(x);
    let pct = |r: i64, t: i64| {
        if t > 0 {
            format!("{} ({}%)", size(r), r * 100 / t)
        } else {
            size(r)
        }
    };
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let images = list("Images");
    let containers = list("Containers");
    let volumes = list("Volumes");
    let cache = list("BuildCache");
    let n = |x: &Value, k: &str| x[k].as_i64().unwrap_or(0);
    let img_total: i64 = images.iter().map(|i| n(i, "Size")).sum();
    let img_active = images.iter().filter(|i| n(i, "Containers") > 0).count();
    let img_reclaim: i64 = images
        .iter()
        .filter(|i| n(i, "Containers") <= 0)
        .map(|i| n(i, "Size") - n(i, "SharedSize").max(0))
        .sum();
    let ct_total: i64 = containers.iter().map(|c| n(c, "SizeRw")).sum();
    let ct_active = containers
        .iter()
        .filter(|c| c["State"].as_str() == Some("running"))
        .count();
    let ct_reclaim: i64 = containers
        .iter()
        .filter(|c| c["State"].as_str() != Some("running"))
        .map(|c| n(c, "SizeRw"))
        .sum();
    let vol_size = |x: &Value| x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0);
    let vol_refs = |x: &Value| x["UsageData"]["RefCount"].as_i64().unwrap_or(0);
    let vol_total: i64 = volumes.iter().map(vol_size).sum();
    let vol_active = volumes.iter().filter(|x| vol_refs(x) > 0).count();
    let vol_reclaim: i64 = volumes
        .iter()
        .filter(|x| vol_refs(x) == 0)
        .map(vol_size)
        .sum();
    let bc_total: i64 = cache.iter().map(|b| n(b, "Size")).sum();
    let bc_active = cache
        .iter()
        .filter(|b| b["InUse"].as_bool() == Some(true))
        .count();
    let bc_reclaim: i64 = cache
        .iter()
        .filter(|b| b["InUse"].as_bool() != Some(true))
        .map(|b| n(b, "Size"))
        .sum();
    let row = |kind: &str, total: usize, active: usize, sz: i64, reclaim: i64| {
        serde_json::json!({
            "Type": kind,
            "TotalCount": total.to_string(),
            "Active": active.to_string(),
            "Size": size(sz),
            "Reclaimable": pct(reclaim, sz),
        })
    };
    let rows = vec![
        row("Images", images.len(), img_active, img_total, img_reclaim),
        row(
            "Containers",
            containers.len(),
            ct_active,
            ct_total,
            ct_reclaim,
        ),
        row(
            "Local Volumes",
            volumes.len(),
            vol_active,
            vol_total,
            vol_reclaim,
        ),
        row("Build Cache", cache.len(), bc_active, bc_total, bc_reclaim),
    ];
    let headers = serde_json::json!({
        "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
        "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
    });
    format::print_rows(
        fmt,
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &headers,
        &rows,
    )?;
    Ok(0)
}

/// `system df -v`: each image, container, volume and cache record, as the docker
/// CLI writes them (its sizes: three significant digits for an image's size,
/// four for the rest).
fn df_verbose(v: &Value, fmt: Option<&str>) -> Result<i32> {
    use crate::format::human_size_precision as hs;
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let n = |x: &Value, k: &str| x[k].as_i64().unwrap_or(0);
    let ago = |t: i64| {
        let d = chrono::Utc::now() - chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        format!("{} ago", berth_api::human_duration(d.num_seconds()))
    };
    let iso_ago = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| ago(t.timestamp()))
            .unwrap_or_default()
    };
    let images: Vec<Value> = list("Images")
        .iter()
        .map(|i| {
            let tag = i["RepoTags"]
                .as_array()
                .and_then(|t| t.first())
                .and_then(Value::as_str)
                .unwrap_or("<none>:<none>");
            let (repo, tag) = tag.rsplit_once(':').unwrap_or((tag, "<none>"));
            let size = n(i, "Size");
            let shared = n(i, "SharedSize").max(0);
            let id = i["Id"].as_str().unwrap_or("");
            serde_json::json!({
                "Repository": repo, "Tag": tag,
                "ID": id.trim_start_matches("sha256:").chars().take(12).collect::<String>(),
                "CreatedSince": ago(n(i, "Created")),
                "Size": hs(size as f64, 3),
                "SharedSize": hs(shared as f64, 4),
                "UniqueSize": hs((size - shared) as f64, 4),
                "Containers": n(i, "Containers").max(0).to_string(),
            })
        })
        .collect();
    let containers: Vec<Value> = list("Containers")
        .iter()
        .map(|c| {
            let cmd = c["Command"].as_str().unwrap_or("");
            let cmd = if cmd.chars().count() > 20 {
                cmd.chars().take(19).collect::<String>() + "…"
            } else {
                cmd.to_string()
            };
            let volumes = c["Mounts"]
                .as_array()
                .map_or(0, |m| m.iter().filter(|m| m["Type"] == "volume").count());
            serde_json::json!({
                "ID": c["Id"].as_str().unwrap_or("").chars().take(12).collect::<String>(),
                "Image": c["Image"],
                "Command": format!("{cmd:?}"),
                "LocalVolumes": volumes.to_string(),
                "Size": hs(n(c, "SizeRw") as f64, 4),
                "RunningFor": ago(n(c, "Created")),
                "Status": c["Status"],
                "Names": c["Names"].as_array().into_iter().flatten().filter_map(Value::as_str).map(|s| s.trim_start_matches('/')).collect::<Vec<_>>().join(","),
            })
        })
        .collect();
    let volumes: Vec<Value> = list("Volumes")
        .iter()
        .map(|x| {
            serde_json::json!({
                "Name": x["Name"],
                "Links": x["UsageData"]["RefCount"].as_i64().unwrap_or(0).to_string(),
                "Size": hs(x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as f64, 4),
            })
        })
        .collect();
    let cache_total: i64 = list("BuildCache").iter().map(|b| n(b, "Size")).sum();
    let cache: Vec<Value> = list("BuildCache")
        .iter()
        .map(|b| {
            serde_json::json!({
                "ID": b["ID"].as_str().unwrap_or("").chars().take(12).collect::<String>(),
                "CacheType": b["Type"],
                "Size": hs(n(b, "Size") as f64, 4),
                "CreatedSince": iso_ago(b["CreatedAt"].as_str().unwrap_or("")),
                "LastUsedSince": iso_ago(b["LastUsedAt"].as_str().unwrap_or("")),
                "UsageCount": n(b, "UsageCount").to_string(),
                "Shared": b["Shared"].as_bool().unwrap_or(false).to_string(),
            })
        })
        .collect();
    if fmt == Some("json") {
        println!(
            "{}",
            serde_json::json!({"Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": cache})
        );
        return Ok(0);
    }
    if let Some(f) = fmt {
        bail!("berth system df -v takes --format json or none (got {f:?})");
    }
    let section = |title: &str, template: &str, headers: Value, rows: &[Value]| -> Result<()> {
        println!("{title}\n");
        format::print_rows(Some(template), template, &headers, rows)?;
        println!();
        Ok(())
    };
    section(
        "Images space usage:",
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        serde_json::json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"}),
        &images,
    )?;
    section(
        "Containers space usage:",
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        serde_json::json!({"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "RunningFor": "CREATED", "Status": "STATUS", "Names": "NAMES"}),
        &containers,
    )?;
    section(
        "Local Volumes space usage:",
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        serde_json::json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
        &volumes,
    )?;
    println!("Build cache usage: {}\n", hs(cache_total as f64, 4));
    format::print_rows(
        Some("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}"),
        "",
        &serde_json::json!({"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}),
        &cache,
    )?;
    Ok(0)
}

/// `system prune`: stopped containers, unused networks, dangling (with `-a`,
/// unused) images and the build cache, anonymous volumes with `--volumes`; asks
/// first unless `-f`, as the docker CLI does.
pub async fn prune(
    c: &Client,
    all: bool,
    volumes: bool,
    force: bool,
    filters: &[String],
) -> Result<i32> {
    if !force {
        let mut what = vec![
            "all stopped containers",
            "all networks not used by at least one container",
        ];
        if volumes {
            what.push("all anonymous volumes not used by at least one container");
        }
        what.push(if all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        what.push(if all {
            "all build cache"
        } else {
            "unused build cache"
        });
        eprintln!("WARNING! This will remove:");
        for w in &what {
            eprintln!("  - {w}");
        }
        eprint!("\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y") {
            eprintln!();
            return Ok(0);
        }
    }
    let mut reclaimed = 0i64;
    let space = |v: &Value| v["SpaceReclaimed"].as_i64().unwrap_or(0);
    // Each list, then a blank line after it, as the docker CLI prints them.
    let mut sections = vec![
        (
            "/containers/prune",
            "ContainersDeleted",
            "Deleted Containers:",
        ),
        ("/networks/prune", "NetworksDeleted", "Deleted Networks:"),
    ];
    if volumes {
        sections.push(("/volumes/prune", "VolumesDeleted", "Deleted Volumes:"));
    }
    for (path, key, heading) in sections {
        let v = format::prune(c, path, filters, key, heading).await?;
        if v[key].as_array().is_some_and(|a| !a.is_empty()) {
            println!();
        }
        reclaimed += space(&v);
    }
    let mut image_filters = filters.to_vec();
    image_filters.push(format!("dangling={}", !all));
    let resp = c
        .post(&format!(
            "/images/prune?filters={}",
            crate::containers::filters_param(&image_filters)?
        ))
        .await?;
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
    let items = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !items.is_empty() {
        println!("Deleted Images:");
        for i in &items {
            if let Some(u) = i["Untagged"].as_str() {
                println!("untagged: {u}");
            }
            if let Some(d) = i["Deleted"].as_str() {
                println!("deleted: {d}");
            }
        }
        println!();
    }
    reclaimed += space(&v);
    let resp = c
        .post(&format!("/build/prune{}", if all { "?all=1" } else { "" }))
        .await?;
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
    let caches = v["CachesDeleted"].as_array().cloned().unwrap_or_default();
    if !caches.is_empty() {
        println!("Deleted build cache objects:");
        for k in caches.iter().filter_map(Value::as_str) {
            println!("{k}");
        }
        println!();
    }
    reclaimed += space(&v);
    println!(
        "Total reclaimed space: {}",
        crate::images::human_size(reclaimed)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_line_as_docker_prints_it() {
        let e = serde_json::json!({
            "Type": "container", "Action": "start", "timeNano": 1_700_000_000_123_456_789i64,
            "Actor": { "ID": "abc", "Attributes": { "name": "web", "image": "busybox" } }
        });
        assert_eq!(
            event_line(&e),
            "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=web)"
        );
    }
}
