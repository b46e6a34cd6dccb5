//! `berth stats`: the docker CLI's live table of CPU, memory, network, block I/O
//! and pids per container, computed from the daemon's stats stream as the docker
//! CLI computes it; `--no-stream` prints one table.

use crate::client::{enc, Client};
use crate::format::{print_rows, Template};
use anyhow::Result;
use clap::Args;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Args)]
pub struct StatsOpts {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

const DEFAULT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// go-units' HumanSizeWithPrecision(n, 3).
fn decimal(n: f64) -> String {
    crate::format::human_size_precision(n, 3)
}

/// go-units' BytesSize: binary units, "%.4g".
fn binary(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig(v, 4), units[i])
}

use crate::format::significant as sig;

/// One row of the table from one stats sample, as the docker CLI computes it.
pub fn row(s: &Value, no_trunc: bool) -> Value {
    let u = |v: &Value| v.as_u64().unwrap_or(0) as f64;
    let cpu = &s["cpu_stats"];
    let pre = &s["precpu_stats"];
    let cpu_delta = u(&cpu["cpu_usage"]["total_usage"]) - u(&pre["cpu_usage"]["total_usage"]);
    let sys_delta = u(&cpu["system_cpu_usage"]) - u(&pre["system_cpu_usage"]);
    let online = match u(&cpu["online_cpus"]) {
        0.0 => cpu["cpu_usage"]["percpu_usage"]
            .as_array()
            .map_or(0.0, |a| a.len() as f64),
        n => n,
    };
    let cpu_pct = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    // The page cache does not count: cgroup v1's total_inactive_file, v2's
    // inactive_file.
    let usage = u(&mem["usage"]);
    let inactive = [
        &mem["stats"]["total_inactive_file"],
        &mem["stats"]["inactive_file"],
    ]
    .iter()
    .map(|v| u(v))
    .find(|v| *v > 0.0 && *v < usage)
    .unwrap_or(0.0);
    let used = usage - inactive;
    let limit = u(&mem["limit"]);
    let mem_pct = if limit > 0.0 {
        used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in s["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += u(&n["rx_bytes"]);
        tx += u(&n["tx_bytes"]);
    }
    let (mut read, mut write) = (0.0, 0.0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += u(&e["value"]),
            Some("write") => write += u(&e["value"]),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or("");
    let id = if no_trunc {
        id
    } else {
        &id[..id.len().min(12)]
    };
    json!({
        "Container": id,
        "ID": id,
        "Name": s["name"].as_str().unwrap_or("").trim_start_matches('/'),
        "CPUPerc": format!("{cpu_pct:.2}%"),
        "MemUsage": format!("{} / {}", binary(used), binary(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", decimal(rx), decimal(tx)),
        "BlockIO": format!("{} / {}", decimal(read), decimal(write)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

fn headers() -> Value {
    json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

async fn targets(c: &Client, o: &StatsOpts) -> Result<Vec<String>> {
    if !o.containers.is_empty() {
        return Ok(o.containers.clone());
    }
    let list: Vec<Value> = c
        .get_json(&format!("/containers/json?all={}", u8::from(o.all)))
        .await?;
    Ok(list
        .iter()
        .filter_map(|v| v["Id"].as_str().map(String::from))
        .collect())
}

pub async fn stats(c: &Client, o: &StatsOpts) -> Result<i32> {
    let names = targets(c, o).await?;
    let fmt = o
        .format
        .as_deref()
        .map(|f| if f == "table" { DEFAULT } else { f })
        .unwrap_or(DEFAULT);
    Template::parse(fmt)?;
    if o.no_stream {
        let mut rows = Vec::new();
        let mut failed = false;
        for n in &names {
            match c
                .get_json::<Value>(&format!("/containers/{}/stats?stream=false", enc(n)))
                .await
            {
                Ok(s) => rows.push(row(&s, o.no_trunc)),
                Err(e) => {
                    eprintln!("Error response from daemon: {e}");
                    failed = true;
                }
            }
        }
        print_rows(Some(fmt), DEFAULT, &headers(), &rows)?;
        return Ok(i32::from(failed));
    }
    // Streaming: one reader per container keeps its latest row; the table is
    // drawn again every second (the screen cleared first on a terminal).
    let latest: Arc<Mutex<BTreeMap<usize, Value>>> = Arc::default();
    for (i, n) in names.iter().enumerate() {
        let resp = c
            .get(&format!("/containers/{}/stats?stream=true", enc(n)))
            .await?;
        let latest = latest.clone();
        let no_trunc = o.no_trunc;
        tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut pending = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                while let Some(p) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=p).collect();
                    if let Ok(s) = serde_json::from_slice::<Value>(&line) {
                        latest
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(i, row(&s, no_trunc));
                    }
                }
            }
            latest.lock().unwrap_or_else(|p| p.into_inner()).remove(&i);
        });
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let rows: Vec<Value> = latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        if terminal {
            print!("\x1b[2J\x1b[H");
        }
        print_rows(Some(fmt), DEFAULT, &headers(), &rows)?;
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_percentages_as_the_docker_cli_writes_them() {
        assert_eq!(decimal(0.0), "0B");
        assert_eq!(decimal(648.0), "648B");
        assert_eq!(decimal(1234.0), "1.23kB");
        assert_eq!(binary(1536.0 * 1024.0), "1.5MiB");
        assert_eq!(binary(25_165_824_000.0), "23.44GiB");
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 3145728, "limit": 1073741824, "stats": {"inactive_file": 1048576}},
            "networks": {"eth0": {"rx_bytes": 1234, "tx_bytes": 648}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 4096}, {"op": "write", "value": 0}]},
            "pids_stats": {"current": 3}
        });
        let r = row(&s, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "2MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.20%");
        assert_eq!(r["NetIO"], "1.23kB / 648B");
        assert_eq!(r["BlockIO"], "4.1kB / 0B");
        assert_eq!(r["PIDs"], "3");
    }
}
