//! What a build fetches: a remote context (a git repository, or a tarball or
//! Dockerfile over HTTP), `ADD <url>` and `ADD <git repository>`.

use std::path::Path;

pub use berth_build::copy::is_git_url as is_git;

/// Downloads `url` into the file `dest`; returns its Last-Modified time.
pub async fn download(url: &str, dest: &Path) -> Result<Option<u64>, String> {
    let mut r = berth_registry::client::get_url(url)
        .await
        .map_err(|e| format!("failed to load {url}: {e}"))?;
    let modified = r
        .header("last-modified")
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp().max(0) as u64);
    let mut f =
        std::fs::File::create(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    while let Some(chunk) = r.chunk().await {
        let chunk = chunk.map_err(|e| format!("reading {url}: {e}"))?;
        std::io::Write::write_all(&mut f, &chunk)
            .map_err(|e| format!("writing {}: {e}", dest.display()))?;
    }
    Ok(modified)
}

/// Clones the repository `url` (`#ref[:subdir]` picks a branch, tag or commit)
/// into `dest`; returns the directory the context is (the subdirectory).
pub async fn clone(
    url: &str,
    dest: &Path,
    keep_git_dir: bool,
) -> Result<std::path::PathBuf, String> {
    let (repo, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, f),
        None => (url, ""),
    };
    let (reference, subdir) = match fragment.split_once(':') {
        Some((r, s)) => (r, s),
        None => (fragment, ""),
    };
    let git = |args: &[&str], cwd: Option<&Path>| {
        let mut c = tokio::process::Command::new("git");
        // Never a local path or a hook of the repository's; never a prompt.
        c.args([
            "-c",
            "protocol.file.allow=never",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .stdin(std::process::Stdio::null());
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        c
    };
    let dest_s = dest.to_str().ok_or("a path that is not UTF-8")?;
    let mut args = vec!["clone", "--quiet", "--depth", "1"];
    if !reference.is_empty() {
        args.extend(["--branch", reference]);
    }
    args.extend(["--", repo, dest_s]);
    let out = git(&args, None)
        .output()
        .await
        .map_err(|e| format!("running git: {e}"))?;
    if !out.status.success() {
        // A commit rather than a branch or tag: the whole history, then checkout.
        let _ = std::fs::remove_dir_all(dest);
        let out2 = git(&["clone", "--quiet", "--", repo, dest_s], None)
            .output()
            .await
            .map_err(|e| format!("running git: {e}"))?;
        // (Also the way for servers that cannot make shallow clones.)
        let checked = out2.status.success()
            && (reference.is_empty()
                || git(&["checkout", "--quiet", reference, "--"], Some(dest))
                    .output()
                    .await
                    .map(|o| o.status.success())
                    .unwrap_or(false));
        if !checked {
            return Err(format!(
                "failed to clone {repo}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    if !keep_git_dir {
        let _ = std::fs::remove_dir_all(dest.join(".git"));
    }
    let dir = berth_build::rootfs::scoped(dest, subdir, true);
    if !dir.is_dir() {
        return Err(format!("subdirectory {subdir:?} not found in {repo}"));
    }
    Ok(dir)
}
