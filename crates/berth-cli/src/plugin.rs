//! Docker's CLI plugins run from berth: `berth compose ...` runs the
//! `docker-compose` plugin found where the docker CLI looks for plugins, as the
//! docker CLI runs it (the plugin's name, then the arguments), pointed at berth's
//! daemon through DOCKER_HOST.

use std::path::PathBuf;

/// The directories the docker CLI searches, in its order.
fn dirs() -> Vec<PathBuf> {
    let mut d = Vec::new();
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(c) => d.push(PathBuf::from(c).join("cli-plugins")),
        None => {
            if let Some(h) = std::env::var_os("HOME") {
                d.push(PathBuf::from(h).join(".docker/cli-plugins"));
            }
        }
    }
    for p in [
        "/usr/local/lib/docker/cli-plugins",
        "/usr/local/libexec/docker/cli-plugins",
        "/usr/lib/docker/cli-plugins",
        "/usr/libexec/docker/cli-plugins",
    ] {
        d.push(PathBuf::from(p));
    }
    d
}

/// The plugin for the command `name` (Docker's rule for names: `[a-z][a-z0-9]*`).
pub fn find(name: &str) -> Option<PathBuf> {
    let mut b = name.bytes();
    let valid = b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !valid {
        return None;
    }
    dirs()
        .into_iter()
        .map(|d| d.join(format!("docker-{name}")))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The command word of berth's arguments (after its global `-H`), and where it is.
pub fn command_word(args: &[String]) -> Option<(usize, &str)> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-H" || a == "--host" {
            i += 2;
        } else if a.starts_with("--host=") || (a.starts_with("-H") && a.len() > 2) {
            i += 1;
        } else if a.starts_with('-') {
            return None;
        } else {
            return Some((i, a));
        }
    }
    None
}

/// Runs the plugin in place of berth (it returns only when it cannot).
pub fn exec(plugin: &std::path::Path, host: &str, args: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    // As the docker CLI runs them: the plugin knows it runs as a plugin (and not
    // as a standalone `docker-compose`) by this variable, which names the CLI.
    let cli = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth"));
    std::process::Command::new(plugin)
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", cli)
        .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_word_after_berths_own_flags() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_word(&a(&["berth", "compose", "up"])),
            Some((1, "compose"))
        );
        assert_eq!(
            command_word(&a(&["berth", "-H", "unix:///x", "compose", "up"])),
            Some((3, "compose"))
        );
        assert_eq!(
            command_word(&a(&["berth", "--host=unix:///x", "buildx"])),
            Some((2, "buildx"))
        );
        assert_eq!(command_word(&a(&["berth", "--version"])), None);
        assert!(find("Compose").is_none());
        assert!(find("../bin/sh").is_none());
    }
}
