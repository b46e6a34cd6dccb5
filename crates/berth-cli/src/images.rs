//! Image commands: images, load, save, import, tag, rmi, history.

use crate::client::{enc, from_reader, Client};
use crate::containers::filters_param;
use crate::format::print_rows;
use anyhow::{Context, Result};
use berth_api::{HistoryResponseItem, ImageDeleteItem, ImageSummary, JsonMessage};
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Args)]
pub struct ImagesOpts {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Repository to list ([REPOSITORY[:TAG]])
    pub repository: Option<String>,
}

/// Docker's HumanSize: decimal units, three significant digits.
pub fn human_size(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{:.*}", digits, s.parse::<f64>().unwrap_or(v));
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.trim_start_matches("sha256:").chars().take(12).collect()
    }
}

pub async fn images(c: &Client, o: &ImagesOpts) -> Result<i32> {
    let mut filters = o.filter.clone();
    if let Some(r) = &o.repository {
        filters.push(format!("reference={r}"));
    }
    let mut q = format!("/images/json?filters={}", filters_param(&filters)?);
    if o.all {
        q.push_str("&all=1");
    }
    let list: Vec<ImageSummary> = c.get_json(&q).await?;
    if o.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &list {
            let id = short_id(&i.id, o.no_trunc);
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for i in &list {
        let created = chrono::DateTime::from_timestamp(i.created, 0).unwrap_or_default();
        let since = berth_api::human_duration((chrono::Utc::now() - created).num_seconds());
        let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| {
                    let (r, tag) = t.rsplit_once(':').unwrap_or((t, "<none>"));
                    (r.to_string(), tag.to_string())
                })
                .collect()
        };
        for (repo, tag) in tags {
            rows.push(json!({
                "ID": short_id(&i.id, o.no_trunc),
                "Repository": repo,
                "Tag": tag,
                "Digest": "<none>",
                "CreatedSince": format!("{since} ago"),
                "CreatedAt": created.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
                "Size": human_size(i.size),
                "Containers": i.containers.to_string(),
                "LabelMap": i.labels,
            }));
        }
    }
    let headers = json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "LabelMap": {},
    });
    let default = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
    let fmt = o
        .format
        .as_deref()
        .map(|f| if f == "table" { default } else { f });
    print_rows(fmt, default, &headers, &rows)?;
    Ok(0)
}

/// Prints a JSON message stream as Docker does; fails on an error message.
async fn print_messages(resp: hyper::Response<hyper::body::Incoming>, quiet: bool) -> Result<i32> {
    let body = resp.into_body().collect().await?.to_bytes();
    let mut code = 0;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let m: JsonMessage =
            serde_json::from_slice(line).context("decoding the daemon's progress")?;
        if let Some(e) = m.error_detail.map(|d| d.message).or(m.error) {
            eprintln!("{e}");
            code = 1;
        } else if let Some(s) = m.stream {
            if !quiet {
                print!("{s}");
            }
        } else if let Some(s) = m.status {
            println!("{s}");
        }
    }
    Ok(code)
}

pub async fn load(c: &Client, input: Option<&str>, quiet: bool) -> Result<i32> {
    let body = match input {
        Some(p) => from_reader(std::fs::File::open(p).with_context(|| format!("open {p}"))?),
        None => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                anyhow::bail!("requested load from stdin, but stdin is empty");
            }
            from_reader(std::io::stdin())
        }
    };
    let resp = c
        .request(
            Method::POST,
            &format!("/images/load?quiet={}", u8::from(quiet)),
            body,
            "application/x-tar",
        )
        .await?;
    print_messages(resp, quiet).await
}

pub async fn save(c: &Client, names: &[String], output: Option<&str>) -> Result<i32> {
    let q: Vec<String> = names.iter().map(|n| format!("names={}", enc(n))).collect();
    write_stream(c, &format!("/images/get?{}", q.join("&")), output).await
}

/// Writes a streamed response (a tar) to a file or to stdout, refusing a terminal.
pub async fn write_stream(c: &Client, path: &str, output: Option<&str>) -> Result<i32> {
    use std::io::IsTerminal;
    if output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = c.get(path).await?;
    let mut body = resp.into_body();
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match output {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("create {p}"))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    while let Some(f) = body.frame().await {
        if let Ok(d) = f?.into_data() {
            out.write_all(&d).await?;
        }
    }
    out.flush().await?;
    Ok(0)
}

pub async fn import(
    c: &Client,
    source: &str,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
) -> Result<i32> {
    let body = if source == "-" {
        from_reader(std::io::stdin())
    } else {
        from_reader(std::fs::File::open(source).with_context(|| format!("open {source}"))?)
    };
    let mut q = "/images/create?fromSrc=-".to_string();
    if let Some(r) = reference {
        let r = berth_image_ref(r);
        q.push_str(&format!("&repo={}", enc(&r.0)));
        if let Some(t) = r.1 {
            q.push_str(&format!("&tag={}", enc(&t)));
        }
    }
    for ch in changes {
        q.push_str(&format!("&changes={}", enc(ch)));
    }
    if let Some(m) = message {
        q.push_str(&format!("&message={}", enc(m)));
    }
    let resp = c
        .request(Method::POST, &q, body, "application/x-tar")
        .await?;
    print_messages(resp, false).await
}

/// Splits `repo[:tag]` where a colon before the last slash is a registry port.
fn berth_image_ref(r: &str) -> (String, Option<String>) {
    let slash = r.rfind('/').map_or(0, |i| i + 1);
    match r[slash..].rfind(':') {
        Some(i) => (
            r[..slash + i].to_string(),
            Some(r[slash + i + 1..].to_string()),
        ),
        None => (r.to_string(), None),
    }
}

pub async fn tag(c: &Client, source: &str, target: &str) -> Result<i32> {
    let (repo, tag) = berth_image_ref(target);
    let mut q = format!("/images/{}/tag?repo={}", enc(source), enc(&repo));
    if let Some(t) = tag {
        q.push_str(&format!("&tag={}", enc(&t)));
    }
    c.post(&q).await?;
    Ok(0)
}

pub async fn rmi(c: &Client, names: &[String], force: bool, no_prune: bool) -> Result<i32> {
    let mut code = 0;
    for n in names {
        let q = format!(
            "/images/{}?force={}&noprune={}",
            enc(n),
            u8::from(force),
            u8::from(no_prune)
        );
        match c.delete(&q).await {
            Ok(resp) => {
                let body = resp.into_body().collect().await?.to_bytes();
                let items: Vec<ImageDeleteItem> = serde_json::from_slice(&body)?;
                for i in items {
                    if let Some(u) = i.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = i.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn history(
    c: &Client,
    name: &str,
    quiet: bool,
    no_trunc: bool,
    format: Option<&str>,
) -> Result<i32> {
    let items: Vec<HistoryResponseItem> = c
        .get_json(&format!("/images/{}/history", enc(name)))
        .await?;
    if quiet {
        for i in &items {
            println!(
                "{}",
                if i.id == "<missing>" {
                    i.id.clone()
                } else {
                    short_id(&i.id, no_trunc)
                }
            );
        }
        return Ok(0);
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|i| {
            let created = chrono::DateTime::from_timestamp(i.created, 0).unwrap_or_default();
            let by = if no_trunc || i.created_by.chars().count() <= 45 {
                i.created_by.clone()
            } else {
                i.created_by.chars().take(44).collect::<String>() + "…"
            };
            json!({
                "ID": if i.id == "<missing>" { i.id.clone() } else { short_id(&i.id, no_trunc) },
                "CreatedSince": format!("{} ago", berth_api::human_duration((chrono::Utc::now() - created).num_seconds())),
                "CreatedAt": created.to_rfc3339(),
                "CreatedBy": by,
                "Size": human_size(i.size),
                "Comment": i.comment,
            })
        })
        .collect();
    let headers = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    let default = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    print_rows(format, default, &headers, &rows)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(1_982_256), "1.98MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_400_000), "4.4MB");
        assert_eq!(human_size(123_456_789), "123MB");
    }

    #[test]
    fn refs_split_at_the_tag_colon() {
        assert_eq!(
            berth_image_ref("localhost:5000/app"),
            ("localhost:5000/app".into(), None)
        );
        assert_eq!(
            berth_image_ref("me/app:v1"),
            ("me/app".into(), Some("v1".into()))
        );
    }
}
