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
    if verbose {
        bail!("berth system df -v is not there yet: use the docker CLI's `docker system df -v` against berthd");
    }
    let v: Value = c.get_json("/system/df").await?;
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
