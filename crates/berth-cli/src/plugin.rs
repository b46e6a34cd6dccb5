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

/// berth's global options that take a value, as they stand before the command.
const VALUED: &[(&str, Option<&str>)] = &[("--host", Some("-H")), ("--context", None)];

/// The command word of berth's arguments (after its global `-H`/`--context`),
/// and where it is.
pub fn command_word(args: &[String]) -> Option<(usize, &str)> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        let valued = VALUED.iter().find_map(|(long, short)| {
            if a == *long || Some(a) == *short {
                Some(2)
            } else if a.starts_with(&format!("{long}="))
                || short.is_some_and(|s| a.starts_with(s) && a.len() > s.len())
            {
                Some(1)
            } else {
                None
            }
        });
        match valued {
            Some(n) => i += n,
            None if a.starts_with('-') => return None,
            None => return Some((i, a)),
        }
    }
    None
}

/// The value of the global option `long` (or `short`) among `args` before the
/// command word.
pub fn global_value(args: &[String], long: &str, short: Option<&str>) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == long || Some(a.as_str()) == short {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&format!("{long}=")) {
            return Some(v.to_string());
        }
        if let Some(v) = short
            .and_then(|s| a.strip_prefix(s))
            .filter(|v| !v.is_empty())
        {
            return Some(v.to_string());
        }
    }
    None
}

/// Where the plugin is pointed: a host, or a docker context it reads itself.
pub enum Target {
    Host(String),
    Context(String),
}

/// Runs the plugin in place of berth (it returns only when it cannot).
pub fn exec(plugin: &std::path::Path, target: &Target, args: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    // As the docker CLI runs them: the plugin knows it runs as a plugin (and not
    // as a standalone `docker-compose`) by this variable, which names the CLI.
    let cli = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth"));
    let mut cmd = std::process::Command::new(plugin);
    cmd.args(args)
        .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", cli);
    match target {
        Target::Host(h) => cmd.env("DOCKER_HOST", h),
        Target::Context(c) => cmd.env_remove("DOCKER_HOST").env("DOCKER_CONTEXT", c),
    };
    cmd.exec()
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
        assert_eq!(
            command_word(&a(&["berth", "--context", "remote", "compose", "ps"])),
            Some((3, "compose"))
        );
        assert_eq!(command_word(&a(&["berth", "--version"])), None);
        let args = a(&["berth", "-Hunix:///x", "--context=remote", "compose"]);
        assert_eq!(
            global_value(&args, "--host", Some("-H")).as_deref(),
            Some("unix:///x")
        );
        assert_eq!(
            global_value(&args, "--context", None).as_deref(),
            Some("remote")
        );
        assert!(find("Compose").is_none());
        assert!(find("../bin/sh").is_none());
    }
}
