//! `.dockerignore`: Go's `filepath.Match` rules per path element, `**` for any
//! number of elements, `!` exceptions, the last matching line deciding; a pattern
//! that matches a directory excludes everything under it.

use regex::Regex;

#[derive(Debug)]
struct Pattern {
    re: Regex,
    exclusion: bool,
    /// The cleaned pattern (for "could an exception reach inside this directory").
    text: String,
}

#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// `filepath.Clean` for slash paths, leading `/` dropped.
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn to_regex(pattern: &str) -> Result<Regex, PatternError> {
    let bad = |reason: &str| PatternError {
        pattern: pattern.to_string(),
        reason: reason.to_string(),
    };
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => {
                if chars.get(i + 1) == Some(&'*') {
                    i += 1;
                    // `**/` also matches no directory at all.
                    if chars.get(i + 1) == Some(&'/') {
                        i += 1;
                        re.push_str("(.*/)?");
                    } else {
                        re.push_str(".*");
                    }
                } else {
                    re.push_str("[^/]*");
                }
            }
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut j = i + 1;
                let mut class = String::from("[");
                if chars.get(j) == Some(&'^') || chars.get(j) == Some(&'!') {
                    class.push('^');
                    j += 1;
                }
                let mut closed = false;
                while j < chars.len() {
                    match chars[j] {
                        ']' => {
                            closed = true;
                            break;
                        }
                        '\\' if j + 1 < chars.len() => {
                            class.push_str(&regex::escape(&chars[j + 1].to_string()));
                            j += 2;
                            continue;
                        }
                        '-' => class.push('-'),
                        ch => class.push_str(&regex::escape(&ch.to_string())),
                    }
                    j += 1;
                }
                if !closed {
                    return Err(bad("unterminated character class"));
                }
                class.push(']');
                re.push_str(&class);
                i = j;
            }
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some(n) => re.push_str(&regex::escape(&n.to_string())),
                    None => return Err(bad("trailing backslash")),
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| bad(&e.to_string()))
}

impl Ignore {
    /// Parses a `.dockerignore` file's text.
    pub fn parse(text: &str) -> Result<Ignore, PatternError> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exclusion, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let p = clean(p);
            if p.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                re: to_regex(&p)?,
                exclusion,
                text: p,
            });
        }
        Ok(Ignore { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let mut parents: Vec<&str> = Vec::new();
        let mut from = 0;
        while let Some(p) = path[from..].find('/') {
            parents.push(&path[..from + p]);
            from += p + 1;
        }
        let mut excluded = false;
        for p in &self.patterns {
            // An exception only matters for what is excluded so far, and the other
            // way round.
            if p.exclusion != excluded {
                continue;
            }
            let hit = p.re.is_match(&path) || parents.iter().any(|d| p.re.is_match(d));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether an exception could re-include something under the excluded
    /// directory `dir` (then its contents must still be walked).
    pub fn may_include_under(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns.iter().any(|p| {
            p.exclusion
                && (p.text.contains("**")
                    || p.text.starts_with(&format!("{dir}/"))
                    || p.text.split('/').count() > dir.split('/').count())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_rules_and_exceptions() {
        let i = Ignore::parse(
            "# comment\n*.md\n!README.md\ntemp?\n/build\n**/*.log\nsecret/\nnode_modules\n",
        )
        .unwrap();
        assert!(i.excluded("notes.md"));
        assert!(!i.excluded("README.md"));
        assert!(!i.excluded("docs/notes.md"), "* does not cross directories");
        assert!(i.excluded("temp1"));
        assert!(!i.excluded("temp12"));
        assert!(i.excluded("build/out/x"));
        assert!(i.excluded("a.log"));
        assert!(i.excluded("a/b/c.log"));
        assert!(i.excluded("secret/key"));
        assert!(i.excluded("node_modules/x/y.js"));
        assert!(!i.excluded("src/main.rs"));
        let i = Ignore::parse("*\n!keep\n!dir/inner\n").unwrap();
        assert!(i.excluded("a"));
        assert!(!i.excluded("keep"));
        assert!(!i.excluded("dir/inner"));
        assert!(i.excluded("dir/other"));
        assert!(i.may_include_under("dir"));
        let i = Ignore::parse("[a-c]x\n\\*lit\n").unwrap();
        assert!(i.excluded("bx"));
        assert!(!i.excluded("dx"));
        assert!(i.excluded("*lit"));
        assert!(!i.excluded("alit"));
        assert!(Ignore::parse("[abc\n").is_err());
    }
}
