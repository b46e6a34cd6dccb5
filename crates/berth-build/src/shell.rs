//! Word expansion as the Dockerfile reference defines it for the instructions that
//! take variables (FROM, ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME,
//! WORKDIR, ARG): `$name`, `${name}` and the modifiers `:-`, `-`, `:+`, `+`, `:?`,
//! `?`, `#`, `##`, `%`, `%%`, `/` and `//`; quotes (single: literal, double:
//! expanding) and the escape character, which also escapes `$`.

use std::collections::HashMap;

/// Variables in scope: the stage's ENV and the ARGs declared so far.
pub type Vars = HashMap<String, String>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExpandError {
    #[error("missing '}}' in {0:?}")]
    Unterminated(String),
    #[error("unterminated quote in {0:?}")]
    UnterminatedQuote(String),
    #[error("bad substitution: {0:?}")]
    BadSubstitution(String),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a Vars,
    src: &'a str,
    /// Names of variables the expansion read (for the cache key of build args).
    used: Vec<String>,
}

/// Expands `s` as one word: quotes removed, variables replaced, no splitting.
pub fn expand(s: &str, vars: &Vars, escape: char) -> Result<String, ExpandError> {
    let mut words = lex(s, vars, escape, false)?;
    Ok(words.0.pop().unwrap_or_default())
}

/// Expands `s` into words split at unquoted whitespace.
pub fn expand_words(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, ExpandError> {
    Ok(lex(s, vars, escape, true)?.0)
}

/// The variables `s` refers to (read, set or not).
pub fn referenced(s: &str, vars: &Vars, escape: char) -> Vec<String> {
    lex(s, vars, escape, false).map(|r| r.1).unwrap_or_default()
}

/// Splits `s` into words at unquoted whitespace, quotes and escapes kept as written
/// (for ENV and LABEL `key=value` pairs, expanded one by one afterwards).
pub fn split_raw(s: &str, escape: char) -> Result<Vec<String>, ExpandError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c.is_whitespace() {
                    if have {
                        out.push(std::mem::take(&mut cur));
                        have = false;
                    }
                    continue;
                }
                have = true;
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        return Err(ExpandError::UnterminatedQuote(s.to_string()));
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

fn lex(
    s: &str,
    vars: &Vars,
    escape: char,
    split: bool,
) -> Result<(Vec<String>, Vec<String>), ExpandError> {
    let mut l = Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        vars,
        src: s,
        used: Vec::new(),
    };
    let words = l.words(split)?;
    Ok((words, l.used))
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn words(&mut self, split: bool) -> Result<Vec<String>, ExpandError> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut have = false;
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                self.pos += 1;
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
                continue;
            }
            have = true;
            match c {
                '\'' => {
                    self.pos += 1;
                    loop {
                        match self.next() {
                            None => return Err(ExpandError::UnterminatedQuote(self.src.into())),
                            Some('\'') => break,
                            Some(c) => cur.push(c),
                        }
                    }
                }
                '"' => {
                    self.pos += 1;
                    loop {
                        match self.next() {
                            None => return Err(ExpandError::UnterminatedQuote(self.src.into())),
                            Some('"') => break,
                            Some('$') => {
                                let v = self.dollar()?;
                                cur.push_str(&v);
                            }
                            Some(c) if c == self.escape => match self.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    self.pos += 1;
                                    cur.push(n);
                                }
                                _ => cur.push(c),
                            },
                            Some(c) => cur.push(c),
                        }
                    }
                }
                '$' => {
                    self.pos += 1;
                    let v = self.dollar()?;
                    // An unquoted expansion is split too, as the shell does.
                    for ch in v.chars() {
                        if split && ch.is_whitespace() {
                            if !cur.is_empty() {
                                out.push(std::mem::take(&mut cur));
                            }
                        } else {
                            cur.push(ch);
                        }
                    }
                    have = !cur.is_empty() || !split;
                }
                c if c == self.escape => {
                    self.pos += 1;
                    match self.next() {
                        Some(n) => cur.push(n),
                        None => cur.push(c),
                    }
                }
                c => {
                    self.pos += 1;
                    cur.push(c);
                }
            }
        }
        if have || !split {
            out.push(cur);
        }
        Ok(out)
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        if !self.used.iter().any(|u| u == name) {
            self.used.push(name.to_string());
        }
        self.vars.get(name).cloned()
    }

    /// After a `$`: the expansion it starts.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let n = self.name();
                Ok(self.lookup(&n).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    /// The word of a modifier, up to the closing brace (or `/` for a pattern's end
    /// when `stop_slash`), expanded.
    fn modifier_word(&mut self, stop_slash: bool) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err(ExpandError::Unterminated(self.src.into())),
                Some('}') => {
                    self.pos -= 1;
                    return Ok(out);
                }
                Some('/') if stop_slash => {
                    self.pos -= 1;
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some('\'') => loop {
                    match self.next() {
                        None => return Err(ExpandError::UnterminatedQuote(self.src.into())),
                        Some('\'') => break,
                        Some(c) => out.push(c),
                    }
                },
                Some('"') => loop {
                    match self.next() {
                        None => return Err(ExpandError::UnterminatedQuote(self.src.into())),
                        Some('"') => break,
                        Some('$') => {
                            let v = self.dollar()?;
                            out.push_str(&v);
                        }
                        Some(c) => out.push(c),
                    }
                },
                Some(c) if c == self.escape => {
                    // Kept escaped for patterns (`\*` is a literal star).
                    if let Some(n) = self.next() {
                        out.push('\\');
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn close(&mut self) -> Result<(), ExpandError> {
        match self.next() {
            Some('}') => Ok(()),
            _ => Err(ExpandError::Unterminated(self.src.into())),
        }
    }

    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        if name.is_empty() {
            return Err(ExpandError::BadSubstitution(self.src.into()));
        }
        let value = self.lookup(&name);
        let op = match self.next() {
            Some('}') => return Ok(value.unwrap_or_default()),
            Some(c) => c,
            None => return Err(ExpandError::Unterminated(self.src.into())),
        };
        let set = value.is_some();
        let nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
        let v = value.clone().unwrap_or_default();
        let unescape = |w: String| unescape_pattern(&w);
        match op {
            // `:-`, `:+`, `:?` test "set and not empty"; `-`, `+`, `?` only "set".
            ':' | '-' | '+' | '?' => {
                let (op, present) = if op == ':' {
                    let op2 = self
                        .next()
                        .ok_or_else(|| ExpandError::Unterminated(self.src.into()))?;
                    (op2, nonempty)
                } else {
                    (op, set)
                };
                let word = self.modifier_word(false)?;
                self.close()?;
                match op {
                    '-' => Ok(if present { v } else { unescape(word) }),
                    '+' => Ok(if present {
                        unescape(word)
                    } else {
                        String::new()
                    }),
                    '?' if present => Ok(v),
                    '?' => Err(ExpandError::Required {
                        name,
                        message: if word.is_empty() {
                            "is not allowed to be unset".into()
                        } else {
                            unescape(word)
                        },
                    }),
                    _ => Err(ExpandError::BadSubstitution(self.src.into())),
                }
            }
            '#' | '%' => {
                let longest = self.peek() == Some(op);
                if longest {
                    self.pos += 1;
                }
                let pattern = self.modifier_word(false)?;
                self.close()?;
                Ok(if op == '#' {
                    trim_prefix(&v, &pattern, longest)
                } else {
                    trim_suffix(&v, &pattern, longest)
                })
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pattern = self.modifier_word(true)?;
                let replacement = if self.peek() == Some('/') {
                    self.pos += 1;
                    self.modifier_word(false)?
                } else {
                    String::new()
                };
                self.close()?;
                Ok(replace(&v, &pattern, &unescape(replacement), all))
            }
            _ => Err(ExpandError::BadSubstitution(self.src.into())),
        }
    }
}

fn unescape_pattern(p: &str) -> String {
    let mut out = String::new();
    let mut it = p.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A glob (`*`, `?`, `\x` literal) matched against the whole of `s`.
fn glob_match(pattern: &[char], s: &[char]) -> bool {
    match pattern.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| glob_match(&pattern[1..], &s[i..])),
        Some('?') => !s.is_empty() && glob_match(&pattern[1..], &s[1..]),
        Some('\\') if pattern.len() > 1 => {
            !s.is_empty() && s[0] == pattern[1] && glob_match(&pattern[2..], &s[1..])
        }
        Some(c) => !s.is_empty() && s[0] == *c && glob_match(&pattern[1..], &s[1..]),
    }
}

fn trim_prefix(v: &str, pattern: &str, longest: bool) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = v.chars().collect();
    let mut ends: Box<dyn Iterator<Item = usize>> = if longest {
        Box::new((0..=s.len()).rev())
    } else {
        Box::new(0..=s.len())
    };
    match ends.find(|&i| glob_match(&p, &s[..i])) {
        Some(i) => s[i..].iter().collect(),
        None => v.to_string(),
    }
}

fn trim_suffix(v: &str, pattern: &str, longest: bool) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = v.chars().collect();
    let mut starts: Box<dyn Iterator<Item = usize>> = if longest {
        Box::new(0..=s.len())
    } else {
        Box::new((0..=s.len()).rev())
    };
    match starts.find(|&i| glob_match(&p, &s[i..])) {
        Some(i) => s[..i].iter().collect(),
        None => v.to_string(),
    }
}

fn replace(v: &str, pattern: &str, replacement: &str, all: bool) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = v.chars().collect();
    if p.is_empty() {
        return v.to_string();
    }
    let mut out = String::new();
    let mut i = 0;
    let mut done = false;
    while i < s.len() {
        if !done {
            // The longest match starting here, as the shell does.
            if let Some(end) = (i + 1..=s.len()).rev().find(|&e| glob_match(&p, &s[i..e])) {
                out.push_str(replacement);
                i = end;
                done = !all;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [
            ("str", "foobarbaz"),
            ("empty", ""),
            ("a", "x y"),
            ("n", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn e(s: &str) -> String {
        expand(s, &vars(), '\\').unwrap()
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(e("$str"), "foobarbaz");
        assert_eq!(e("${str}_x"), "foobarbaz_x");
        assert_eq!(e("$str_x"), "");
        assert_eq!(e("a$"), "a$");
        assert_eq!(e("\\$str"), "$str");
        assert_eq!(e("\\${str}"), "${str}");
        assert_eq!(e("'$str'"), "$str");
        assert_eq!(e("\"$str\""), "foobarbaz");
        assert_eq!(e("\"\\$str\""), "$str");
    }

    #[test]
    fn modifiers_from_the_reference() {
        assert_eq!(e("${unset:-word}"), "word");
        assert_eq!(e("${empty:-word}"), "word");
        assert_eq!(e("${empty-word}"), "");
        assert_eq!(e("${unset-word}"), "word");
        assert_eq!(e("${str:+word}"), "word");
        assert_eq!(e("${empty:+word}"), "");
        assert_eq!(e("${empty+word}"), "word");
        assert_eq!(e("${unset+word}"), "");
        assert_eq!(e("${unset:-$str}"), "foobarbaz");
        assert_eq!(e("${str#f*b}"), "arbaz");
        assert_eq!(e("${str##f*b}"), "az");
        assert_eq!(e("${str%b*}"), "foobar");
        assert_eq!(e("${str%%b*}"), "foo");
        assert_eq!(e("${str/ba/fo}"), "fooforbaz");
        assert_eq!(e("${str//ba/fo}"), "fooforfoz");
        assert_eq!(e("${str/\\*/x}"), "foobarbaz");
        assert!(matches!(
            expand("${unset:?must be set}", &vars(), '\\'),
            Err(ExpandError::Required { .. })
        ));
        assert!(expand("${str", &vars(), '\\').is_err());
        assert!(expand("${}", &vars(), '\\').is_err());
    }

    #[test]
    fn words_split_outside_quotes() {
        let w = expand_words("a \"b c\" $a 'd e'", &vars(), '\\').unwrap();
        assert_eq!(w, ["a", "b c", "x", "y", "d e"]);
        let w = expand_words("C:\\dir `$n", &vars(), '`').unwrap();
        assert_eq!(w, ["C:\\dir", "$n"]);
    }

    #[test]
    fn raw_split_keeps_quotes() {
        let w = split_raw("a=\"b c\" d='e f' g=h\\ i", '\\').unwrap();
        assert_eq!(w, ["a=\"b c\"", "d='e f'", "g=h\\ i"]);
        assert!(split_raw("a=\"b", '\\').is_err());
    }

    #[test]
    fn referenced_names() {
        assert_eq!(
            referenced("${a:-$n} $unset", &vars(), '\\'),
            ["a", "n", "unset"]
        );
    }
}
