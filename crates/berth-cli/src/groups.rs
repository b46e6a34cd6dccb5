//! Docker's management command groups: `berth container ls`, `berth image rm`,
//! `berth system info` ... are the top-level commands under their group's name,
//! as the docker CLI has them both ways.

/// Each group's subcommands (with their aliases) and the top-level command each
/// stands for.
const TABLE: &[(&str, &[&str], &[&str])] = &[
    ("container", &["ls", "list", "ps"], &["ps"]),
    ("container", &["rm", "remove"], &["rm"]),
    (
        "container",
        &["inspect"],
        &["inspect", "--type", "container"],
    ),
    ("container", &["run"], &["run"]),
    ("container", &["create"], &["create"]),
    ("container", &["start"], &["start"]),
    ("container", &["stop"], &["stop"]),
    ("container", &["kill"], &["kill"]),
    ("container", &["restart"], &["restart"]),
    ("container", &["logs"], &["logs"]),
    ("container", &["exec"], &["exec"]),
    ("container", &["attach"], &["attach"]),
    ("container", &["pause"], &["pause"]),
    ("container", &["unpause"], &["unpause"]),
    ("container", &["rename"], &["rename"]),
    ("container", &["update"], &["update"]),
    ("container", &["top"], &["top"]),
    ("container", &["export"], &["export"]),
    ("container", &["commit"], &["commit"]),
    ("container", &["wait"], &["wait"]),
    ("container", &["port"], &["port"]),
    ("container", &["diff"], &["diff"]),
    ("container", &["stats"], &["stats"]),
    ("container", &["cp"], &["cp"]),
    ("image", &["ls", "list"], &["images"]),
    ("image", &["rm", "remove"], &["rmi"]),
    ("image", &["inspect"], &["inspect", "--type", "image"]),
    ("image", &["build"], &["build"]),
    ("image", &["pull"], &["pull"]),
    ("image", &["push"], &["push"]),
    ("image", &["tag"], &["tag"]),
    ("image", &["history"], &["history"]),
    ("image", &["save"], &["save"]),
    ("image", &["load"], &["load"]),
    ("image", &["import"], &["import"]),
    ("system", &["info"], &["info"]),
    ("builder", &["build"], &["build"]),
];

/// The top-level command a group's subcommand stands for.
fn top_level(group: &str, sub: &str) -> Option<&'static [&'static str]> {
    TABLE
        .iter()
        .find(|(g, subs, _)| *g == group && subs.contains(&sub))
        .map(|(_, _, top)| *top)
}

/// A group's subcommands, for its error messages.
fn subcommands(group: &str) -> String {
    TABLE
        .iter()
        .filter(|(g, _, _)| *g == group)
        .map(|(_, subs, _)| subs[0])
        .collect::<Vec<_>>()
        .join(", ")
}

/// `args` with a group's subcommand (at `i`, the command word) made its
/// top-level command; unchanged when `args[i]` is not a group. A subcommand the
/// group lacks is an error in the docker CLI's words.
pub fn rewrite(args: Vec<String>, i: usize) -> Result<Vec<String>, String> {
    let group = args[i].as_str();
    let grouped = ["container", "image", "builder"].contains(&group)
        || (group == "system" && args.get(i + 1).is_some_and(|s| s == "info"));
    if !grouped {
        return Ok(args);
    }
    // The group's own flags (`--help`) or nothing: clap's answer for the group.
    let Some(sub) = args.get(i + 1).filter(|s| !s.starts_with('-')) else {
        return Err(format!(
            "\"berth {group}\" requires a subcommand: {}",
            subcommands(group)
        ));
    };
    let Some(top) = top_level(group, sub) else {
        return Err(format!(
            "unknown command \"{sub}\" for \"berth {group}\": {}",
            subcommands(group)
        ));
    };
    let mut out: Vec<String> = args[..i].to_vec();
    out.extend(top.iter().map(|s| s.to_string()));
    out.extend(args[i + 2..].iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_become_their_top_level_commands() {
        assert_eq!(
            rewrite(v(&["berth", "container", "ls", "-a"]), 1).unwrap(),
            v(&["berth", "ps", "-a"])
        );
        assert_eq!(
            rewrite(v(&["berth", "-H", "unix:///s", "image", "rm", "x"]), 3).unwrap(),
            v(&["berth", "-H", "unix:///s", "rmi", "x"])
        );
        assert_eq!(
            rewrite(v(&["berth", "image", "inspect", "busybox"]), 1).unwrap(),
            v(&["berth", "inspect", "--type", "image", "busybox"])
        );
        assert_eq!(
            rewrite(v(&["berth", "ps"]), 1).unwrap(),
            v(&["berth", "ps"])
        );
        let e = rewrite(v(&["berth", "container", "fly"]), 1).unwrap_err();
        assert!(
            e.starts_with("unknown command \"fly\" for \"berth container\": ls, rm, inspect, run"),
            "{e}"
        );
        // `system dial-stdio` is berth's own subcommand.
        assert_eq!(
            rewrite(v(&["berth", "system", "dial-stdio"]), 1).unwrap(),
            v(&["berth", "system", "dial-stdio"])
        );
    }
}
