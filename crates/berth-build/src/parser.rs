//! The Dockerfile's text into nodes: parser directives (`syntax`, `escape`,
//! `check`), comments, line continuations with the escape character, flags, and
//! here-documents (`<<EOF`, `<<-EOF`, `<<"EOF"`) for RUN, COPY and ADD.

use regex::Regex;
use std::sync::OnceLock;

/// One instruction as written: its keyword, flags and the text after them.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The line the instruction starts on (1-based) and the last it takes.
    pub line: usize,
    pub end: usize,
    /// Lower case.
    pub keyword: String,
    /// `--name=value` (or `--name`) flags before the arguments.
    pub flags: Vec<(String, Option<String>)>,
    /// The arguments after the flags, continuations joined.
    pub args: String,
    /// The whole instruction as written (continuations joined, no heredoc bodies).
    pub original: String,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// Unquoted delimiter: variables in the body are expanded.
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    /// The `syntax` directive: noted, not followed (berth's frontend is built in).
    pub syntax: Option<String>,
    pub check: Option<String>,
    pub nodes: Vec<Node>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

pub const KEYWORDS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

fn directive_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$").expect("regex"))
}

fn heredoc_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"<<(-?)\s*(?:"([A-Za-z0-9_.-]+)"|'([A-Za-z0-9_.-]+)'|([A-Za-z0-9_.-]+))"#)
            .expect("regex")
    })
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// The keyword closest to an unknown one, as BuildKit suggests it.
fn suggest(word: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    KEYWORDS
        .iter()
        .map(|k| (distance(&word.to_lowercase(), k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut df = Dockerfile {
        escape: '\\',
        syntax: None,
        check: None,
        nodes: Vec::new(),
        warnings: Vec::new(),
    };
    // Directives: only at the very top, each once; anything else ends them.
    let mut i = 0;
    let mut seen: Vec<String> = Vec::new();
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(c) = directive_re().captures(l) else {
            break;
        };
        let name = c[1].to_lowercase();
        let value = c[2].to_string();
        if !["syntax", "escape", "check"].contains(&name.as_str()) {
            break;
        }
        if seen.contains(&name) {
            return Err(err(
                i + 1,
                format!("only one {name} parser directive can be used"),
            ));
        }
        seen.push(name.clone());
        match name.as_str() {
            "escape" => {
                df.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(err(
                            i + 1,
                            format!("invalid escape token '{value}' does not match ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => {
                df.warnings.push(format!(
                    "the syntax directive ({value}) is noted and not followed: berth's Dockerfile frontend is built in"
                ));
                df.syntax = Some(value)
            }
            _ => df.check = Some(value),
        }
        i += 1;
    }
    let escape = df.escape;
    let continues = |l: &str| -> Option<String> {
        let t = l.trim_end();
        t.strip_suffix(escape).map(str::to_string)
    };
    let is_comment = |l: &str| l.trim_start().starts_with('#');
    while i < lines.len() {
        let first = lines[i];
        if first.trim().is_empty() || is_comment(first) {
            i += 1;
            continue;
        }
        let start = i;
        let mut logical = String::new();
        let mut cur = first.to_string();
        loop {
            match continues(&cur) {
                Some(head) => {
                    logical.push_str(&head);
                    i += 1;
                    // Comment lines inside a continuation are dropped; so are empty
                    // ones (BuildKit warns about them).
                    while i < lines.len() && (is_comment(lines[i]) || lines[i].trim().is_empty()) {
                        if lines[i].trim().is_empty() {
                            df.warnings.push(format!(
                                "line {}: empty continuation line (deprecated)",
                                i + 1
                            ));
                        }
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                    cur = lines[i].to_string();
                }
                None => {
                    logical.push_str(&cur);
                    break;
                }
            }
        }
        let line = start + 1;
        let trimmed = logical.trim();
        let (word, rest) = match trimmed.find(char::is_whitespace) {
            Some(p) => (&trimmed[..p], trimmed[p..].trim_start()),
            None => (trimmed, ""),
        };
        let keyword = word.to_lowercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            let hint = suggest(word)
                .map(|k| format!(" (did you mean {}?)", k.to_uppercase()))
                .unwrap_or_default();
            return Err(err(line, format!("unknown instruction: {word}{hint}")));
        }
        let (flags, args) = split_flags(rest);
        // Here-documents: their bodies follow the instruction's line.
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "run" | "copy" | "add") && !args.trim_start().starts_with('[')
        {
            for c in heredoc_re().captures_iter(&args) {
                let chomp = !c[1].is_empty();
                let (name, expand) = match (c.get(2), c.get(3), c.get(4)) {
                    (Some(n), _, _) | (_, Some(n), _) => (n.as_str().to_string(), false),
                    (_, _, Some(n)) => (n.as_str().to_string(), true),
                    _ => unreachable!("one alternative matched"),
                };
                let mut content = String::new();
                let mut closed = false;
                i += 1;
                while i < lines.len() {
                    let mut l = lines[i];
                    if chomp {
                        l = l.trim_start_matches('\t');
                    }
                    if l == name {
                        closed = true;
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                    i += 1;
                }
                if !closed {
                    return Err(err(line, format!("unterminated heredoc {name}")));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        if args.trim().is_empty() && !matches!(keyword.as_str(), "healthcheck") {
            return Err(err(
                line,
                format!("{} requires at least one argument", keyword.to_uppercase()),
            ));
        }
        df.nodes.push(Node {
            line,
            end: i + 1,
            keyword,
            flags,
            args,
            original: trimmed.to_string(),
            heredocs,
        });
        i += 1;
    }
    Ok(df)
}

/// Leading `--name[=value]` words (the value may be quoted) and the rest.
fn split_flags(s: &str) -> (Vec<(String, Option<String>)>, String) {
    let mut flags = Vec::new();
    let mut rest = s.trim_start();
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            break;
        }
        match word.split_once('=') {
            Some((n, v)) => {
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                flags.push((n.to_lowercase(), Some(v.to_string())))
            }
            None => flags.push((word.to_lowercase(), None)),
        }
        rest = f[end..].trim_start();
    }
    (flags, rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_only_at_the_top() {
        let df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\n  b\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.nodes[1].args, "a   b");
        assert_eq!(df.nodes[1].line, 4);
        // After a comment, a directive is a comment.
        let df = parse("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.nodes[1].args, "a  b");
        // Unknown directive ends them too.
        let df = parse("# foo=bar\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(df.escape, '\\');
        assert!(parse("# escape=\\\n# escape=`\nFROM x\n").is_err());
    }

    #[test]
    fn continuations_skip_comments_and_blank_lines() {
        let df =
            parse("FROM x\nRUN echo a \\\n# a comment\n\n  && echo b\n\nCMD [\"sh\"]\n").unwrap();
        assert_eq!(df.nodes.len(), 3);
        assert_eq!(df.nodes[1].args, "echo a   && echo b");
        assert_eq!(df.nodes[2].keyword, "cmd");
        assert_eq!(df.nodes[2].line, 7);
    }

    #[test]
    fn flags_and_unknown_instructions() {
        let df = parse("from --platform=linux/amd64 busybox AS b\nCOPY --from=b --chown=1:2 a b\n")
            .unwrap();
        assert_eq!(
            df.nodes[0].flags,
            [("platform".to_string(), Some("linux/amd64".to_string()))]
        );
        assert_eq!(df.nodes[0].args, "busybox AS b");
        assert_eq!(df.nodes[1].flags.len(), 2);
        let e = parse("FROM x\nRUNN echo\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "unknown instruction: RUNN (did you mean RUN?)");
        assert!(parse("FROM x\nWORKDIR\n")
            .unwrap_err()
            .message
            .contains("WORKDIR requires"));
    }

    #[test]
    fn heredocs() {
        let df = parse(
            "FROM x\nRUN <<EOF\necho a\necho $b\nEOF\nCOPY <<-'A' <<B /dst/\n\tone $x\n\tA\ntwo\nB\nCMD x\n",
        )
        .unwrap();
        assert_eq!(df.nodes.len(), 4);
        assert_eq!(df.nodes[1].heredocs[0].content, "echo a\necho $b\n");
        assert!(df.nodes[1].heredocs[0].expand);
        let h = &df.nodes[2].heredocs;
        assert_eq!(h[0].name, "A");
        assert_eq!(h[0].content, "one $x\n");
        assert!(!h[0].expand);
        assert_eq!(h[1].content, "two\n");
        assert_eq!(df.nodes[3].keyword, "cmd");
        assert!(parse("FROM x\nRUN <<EOF\necho\n").is_err());
    }
}
