//! Nodes into typed instructions, their flags checked. Arguments that take
//! variables stay as written here: they are expanded when the instruction runs,
//! with the variables in scope at that point.

use crate::parser::{Heredoc, Node, ParseError};
use crate::shell;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `["prog", "arg"]`: run as is.
    Exec(Vec<String>),
    /// A command line for the stage's shell.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Copy {
    /// ADD rather than COPY.
    pub add: bool,
    /// Sources then destination, as written (expanded when run).
    pub srcs: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// `None` for `HEALTHCHECK NONE`.
    pub test: Option<Command>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    Run {
        cmd: Command,
        mounts: Vec<String>,
        network: Option<String>,
        security: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    /// Raw `key=value` words (expanded when run).
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Maintainer(String),
    Copy(Copy),
    OnBuild(String),
    Healthcheck(Health),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub node: Node,
    pub kind: Kind,
}

fn err(node: &Node, message: impl Into<String>) -> ParseError {
    ParseError {
        line: node.line,
        message: message.into(),
    }
}

/// A JSON array of strings, or `None` when `s` is not one.
pub fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command(s: &str) -> Command {
    match json_array(s) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(s.to_string()),
    }
}

fn check_flags(node: &Node, allowed: &[&str]) -> Result<(), ParseError> {
    for (f, _) in &node.flags {
        if !allowed.contains(&f.as_str()) {
            return Err(err(node, format!("unknown flag: {f}")));
        }
    }
    Ok(())
}

fn flag(node: &Node, name: &str) -> Option<String> {
    node.flags
        .iter()
        .rev()
        .find(|(f, _)| f == name)
        .map(|(_, v)| v.clone().unwrap_or_default())
}

fn bool_flag(node: &Node, name: &str) -> Result<bool, ParseError> {
    match node.flags.iter().rev().find(|(f, _)| f == name) {
        None => Ok(false),
        Some((_, None)) => Ok(true),
        Some((_, Some(v))) => match v.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(err(
                node,
                format!("expecting boolean value for flag {name}, not: {v}"),
            )),
        },
    }
}

/// `key=value` pairs of ENV and LABEL (and the legacy `ENV key value`).
fn pairs(node: &Node, escape: char, what: &str) -> Result<Vec<(String, String)>, ParseError> {
    let words = shell::split_raw(&node.args, escape).map_err(|e| err(node, e.to_string()))?;
    if words.is_empty() {
        return Err(err(node, format!("{what} requires at least one argument")));
    }
    if !words[0].contains('=') {
        // The legacy form: one name, the rest of the line its value.
        let rest = node.args.trim_start()[words[0].len()..].trim().to_string();
        if rest.is_empty() {
            return Err(err(node, format!("{what} must have two arguments")));
        }
        return Ok(vec![(words[0].clone(), rest)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(err(node, format!("{what} names can not be blank"))),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(err(
                node,
                format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value"),
            )),
        })
        .collect()
}

pub fn instruction(node: Node, escape: char) -> Result<Instruction, ParseError> {
    let n = &node;
    let kind = match n.keyword.as_str() {
        "from" => {
            check_flags(n, &["platform"])?;
            let words: Vec<&str> = n.args.split_whitespace().collect();
            let (image, alias) = match words.as_slice() {
                [i] => (i.to_string(), None),
                [i, as_, a] if as_.eq_ignore_ascii_case("as") => {
                    let a = a.to_lowercase();
                    let ok = a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && a.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if !ok {
                        return Err(err(n, format!("invalid name for build stage: {a:?}, name can't start with a number or contain symbols")));
                    }
                    (i.to_string(), Some(a))
                }
                _ => return Err(err(n, "FROM requires either one or three arguments")),
            };
            Kind::From {
                image,
                alias,
                platform: flag(n, "platform"),
            }
        }
        "run" => {
            check_flags(n, &["mount", "network", "security", "device"])?;
            if flag(n, "device").is_some() {
                return Err(err(
                    n,
                    "RUN --device is not supported by berth's builder yet",
                ));
            }
            Kind::Run {
                cmd: command(&n.args),
                mounts: n
                    .flags
                    .iter()
                    .filter(|(f, _)| f == "mount")
                    .map(|(_, v)| v.clone().unwrap_or_default())
                    .collect(),
                network: flag(n, "network"),
                security: flag(n, "security"),
                heredocs: n.heredocs.clone(),
            }
        }
        "cmd" => {
            check_flags(n, &[])?;
            Kind::Cmd(command(&n.args))
        }
        "entrypoint" => {
            check_flags(n, &[])?;
            Kind::Entrypoint(command(&n.args))
        }
        "shell" => {
            check_flags(n, &[])?;
            match json_array(&n.args) {
                Some(v) if !v.is_empty() => Kind::Shell(v),
                _ => return Err(err(n, "SHELL requires the arguments to be in JSON form")),
            }
        }
        "env" => {
            check_flags(n, &[])?;
            Kind::Env(pairs(n, escape, "ENV")?)
        }
        "label" => {
            check_flags(n, &[])?;
            Kind::Label(pairs(n, escape, "LABEL")?)
        }
        "arg" => {
            check_flags(n, &[])?;
            let words = shell::split_raw(&n.args, escape).map_err(|e| err(n, e.to_string()))?;
            let mut out = Vec::new();
            for w in words {
                match w.split_once('=') {
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((w, None)),
                }
            }
            Kind::Arg(out)
        }
        "expose" => {
            check_flags(n, &[])?;
            Kind::Expose(n.args.split_whitespace().map(str::to_string).collect())
        }
        "volume" => {
            check_flags(n, &[])?;
            match json_array(&n.args) {
                Some(v) => Kind::Volume(v),
                None => Kind::Volume(n.args.split_whitespace().map(str::to_string).collect()),
            }
        }
        "user" => {
            check_flags(n, &[])?;
            Kind::User(n.args.trim().to_string())
        }
        "workdir" => {
            check_flags(n, &[])?;
            Kind::Workdir(n.args.trim().to_string())
        }
        "stopsignal" => {
            check_flags(n, &[])?;
            Kind::StopSignal(n.args.trim().to_string())
        }
        "maintainer" => {
            check_flags(n, &[])?;
            Kind::Maintainer(n.args.trim().to_string())
        }
        "onbuild" => {
            check_flags(n, &[])?;
            let first = n
                .args
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_lowercase();
            match first.as_str() {
                "onbuild" => {
                    return Err(err(
                        n,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "from" | "maintainer" => {
                    return Err(err(
                        n,
                        format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            first.to_uppercase()
                        ),
                    ))
                }
                _ => {}
            }
            Kind::OnBuild(n.args.trim().to_string())
        }
        "healthcheck" => {
            check_flags(
                n,
                &[
                    "interval",
                    "timeout",
                    "start-period",
                    "start-interval",
                    "retries",
                ],
            )?;
            let args = n.args.trim();
            let (word, rest) = match args.find(char::is_whitespace) {
                Some(p) => (&args[..p], args[p..].trim()),
                None => (args, ""),
            };
            let test = match word.to_uppercase().as_str() {
                "NONE" => {
                    if !rest.is_empty() || !n.flags.is_empty() {
                        return Err(err(n, "HEALTHCHECK NONE takes no arguments"));
                    }
                    None
                }
                "CMD" if !rest.is_empty() => Some(command(rest)),
                _ => {
                    return Err(err(
                        n,
                        "HEALTHCHECK requires NONE or CMD followed by a command",
                    ))
                }
            };
            Kind::Healthcheck(Health {
                test,
                interval: flag(n, "interval"),
                timeout: flag(n, "timeout"),
                start_period: flag(n, "start-period"),
                start_interval: flag(n, "start-interval"),
                retries: flag(n, "retries"),
            })
        }
        "copy" | "add" => {
            let add = n.keyword == "add";
            if add {
                check_flags(
                    n,
                    &[
                        "chown",
                        "chmod",
                        "link",
                        "checksum",
                        "keep-git-dir",
                        "exclude",
                        "unpack",
                    ],
                )?;
            } else {
                check_flags(n, &["chown", "chmod", "link", "from", "parents", "exclude"])?;
            }
            let mut words = match json_array(&n.args) {
                Some(v) => v,
                None => shell::split_raw(&n.args, escape).map_err(|e| err(n, e.to_string()))?,
            };
            if words.len() < 2 {
                return Err(err(n, format!("{} requires at least two arguments, but only one was provided. Destination could not be determined", n.keyword.to_uppercase())));
            }
            let dest = words.pop().expect("two words");
            let unpack = match flag(n, "unpack") {
                None => None,
                Some(_) => Some(bool_flag(n, "unpack")?),
            };
            Kind::Copy(Copy {
                add,
                srcs: words,
                dest,
                from: flag(n, "from"),
                chown: flag(n, "chown"),
                chmod: flag(n, "chmod"),
                link: bool_flag(n, "link")?,
                parents: bool_flag(n, "parents")?,
                exclude: n
                    .flags
                    .iter()
                    .filter(|(f, _)| f == "exclude")
                    .map(|(_, v)| v.clone().unwrap_or_default())
                    .collect(),
                checksum: flag(n, "checksum"),
                keep_git_dir: bool_flag(n, "keep-git-dir")?,
                unpack,
                heredocs: n.heredocs.clone(),
            })
        }
        other => {
            return Err(err(
                n,
                format!("unknown instruction: {}", other.to_uppercase()),
            ))
        }
    };
    Ok(Instruction { node, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn one(s: &str) -> Result<Kind, ParseError> {
        let df = parse(s)?;
        instruction(df.nodes.into_iter().next().unwrap(), '\\').map(|i| i.kind)
    }

    #[test]
    fn forms() {
        assert_eq!(
            one("CMD [\"a\", \"b\"]").unwrap(),
            Kind::Cmd(Command::Exec(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            one("CMD [not json").unwrap(),
            Kind::Cmd(Command::Shell("[not json".into()))
        );
        assert_eq!(
            one("ENV a=1 b=\"2 3\"").unwrap(),
            Kind::Env(vec![
                ("a".into(), "1".into()),
                ("b".into(), "\"2 3\"".into())
            ])
        );
        assert_eq!(
            one("ENV a 1 2").unwrap(),
            Kind::Env(vec![("a".into(), "1 2".into())])
        );
        assert!(one("ENV a=1 b")
            .unwrap_err()
            .message
            .contains("can't find ="));
        assert!(one("SHELL sh -c").is_err());
        assert_eq!(
            one("ARG a b=2").unwrap(),
            Kind::Arg(vec![("a".into(), None), ("b".into(), Some("2".into()))])
        );
        assert!(one("COPY a")
            .unwrap_err()
            .message
            .contains("at least two arguments"));
        assert!(one("COPY --nope a b")
            .unwrap_err()
            .message
            .contains("unknown flag: nope"));
        assert!(one("ONBUILD ONBUILD RUN x").is_err());
        assert!(one("FROM a b").is_err());
        assert!(one("FROM a AS 1x").is_err());
        match one("COPY --from=build --chmod=755 [\"a b\", \"/c/\"]").unwrap() {
            Kind::Copy(c) => {
                assert_eq!(c.srcs, ["a b"]);
                assert_eq!(c.dest, "/c/");
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.chmod.as_deref(), Some("755"));
            }
            k => panic!("{k:?}"),
        }
        match one("HEALTHCHECK --interval=5s CMD [\"true\"]").unwrap() {
            Kind::Healthcheck(h) => {
                assert_eq!(h.interval.as_deref(), Some("5s"));
                assert_eq!(h.test, Some(Command::Exec(vec!["true".into()])));
            }
            k => panic!("{k:?}"),
        }
    }
}
