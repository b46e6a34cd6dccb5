//! Docker's output formats: aligned tables (tabwriter with padding 3) and the
//! subset of Go templates that `--format` is used with: `{{.Field}}`, nested paths,
//! `json`, `index`, `lower`, `upper`, `title`, `join`, `.Label "key"`, `table`.

use anyhow::{bail, Result};
use serde_json::Value;

/// Go's `%.Ng`: N significant digits, no trailing zeros.
pub fn significant(v: f64, n: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (n - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// go-units' HumanSizeWithPrecision: decimal units, `prec` significant digits
/// (HumanSize is 4).
pub fn human_size_precision(n: f64, prec: i32) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", significant(v, prec), units[i])
}

/// Aligns rows as Docker's tabwriter(minwidth 10, padding 3) does.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let w = (widths[i] + 3).max(10);
                line.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        // As Go's tabwriter: an empty last cell leaves the padding of the one
        // before it.
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Action(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Path(Vec<String>),
    Str(String),
    Ident(String),
}

pub struct Template {
    pieces: Vec<Piece>,
    pub table: bool,
}

fn tokenize(expr: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = expr.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => {
                        if let Some(n) = chars.next() {
                            s.push(n)
                        }
                    }
                    Some(c) => s.push(c),
                    None => bail!("template: unterminated quoted string in {expr:?}"),
                }
            }
            out.push(Token::Str(s));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            if w == "." {
                out.push(Token::Path(vec![]));
            } else if let Some(p) = w.strip_prefix('.') {
                out.push(Token::Path(p.split('.').map(String::from).collect()));
            } else {
                out.push(Token::Ident(w));
            }
        }
    }
    Ok(out)
}

impl Template {
    pub fn parse(src: &str) -> Result<Template> {
        let (table, src) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, src),
        };
        let src = src.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = src.as_str();
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                pieces.push(Piece::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                bail!("template: unclosed action in {src:?}");
            };
            let expr = after[..j].trim_matches('-');
            let toks = tokenize(expr)?;
            if toks.is_empty() {
                bail!("template: missing value for command");
            }
            if let Token::Ident(f) = &toks[0] {
                if ![
                    "json", "index", "lower", "upper", "title", "join", "println",
                ]
                .contains(&f.as_str())
                {
                    bail!("template: function {f:?} not defined");
                }
            }
            pieces.push(Piece::Action(toks));
            rest = &after[j + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces, table })
    }

    pub fn render(&self, v: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action(toks) => out.push_str(&to_text(&eval(toks, v)?)),
            }
        }
        Ok(out)
    }
}

fn lookup(v: &Value, path: &[String]) -> Result<Value> {
    let mut cur = v.clone();
    for k in path {
        cur = match cur {
            // The docker CLI's templates see Go's field names (`ID`, `APIVersion`)
            // as well as the JSON keys (`Id`, `ApiVersion`): they differ in case only.
            Value::Object(ref m) => match m.get(k).or_else(|| {
                m.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, x)| x)
            }) {
                Some(x) => x.clone(),
                None => bail!("template: can't evaluate field {k}"),
            },
            Value::Null => Value::Null,
            _ => bail!("template: can't evaluate field {k} in type {}", kind(&cur)),
        };
    }
    Ok(cur)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
        Value::Null => "nil",
    }
}

fn arg(toks: &[Token], v: &Value) -> Result<Value> {
    match toks.first() {
        Some(Token::Path(p)) => {
            // `.Label "key"` on list rows: the value of one label.
            if p.last().map(String::as_str) == Some("Label") {
                if let Some(Token::Str(k)) = toks.get(1) {
                    let labels = lookup(v, &["LabelMap".to_string()]).unwrap_or(Value::Null);
                    return Ok(labels
                        .get(k)
                        .cloned()
                        .unwrap_or(Value::String(String::new())));
                }
            }
            lookup(v, p)
        }
        Some(Token::Str(s)) => Ok(Value::String(s.clone())),
        Some(Token::Ident(_)) => eval(toks, v),
        None => bail!("template: missing argument"),
    }
}

fn eval(toks: &[Token], v: &Value) -> Result<Value> {
    match &toks[0] {
        Token::Ident(f) => {
            let a = arg(&toks[1..], v)?;
            Ok(match f.as_str() {
                "json" => Value::String(serde_json::to_string(&a)?),
                "lower" => Value::String(to_text(&a).to_lowercase()),
                "upper" => Value::String(to_text(&a).to_uppercase()),
                "println" => Value::String(format!("{}\n", to_text(&a))),
                "title" => {
                    let t = to_text(&a);
                    let mut c = t.chars();
                    Value::String(
                        c.next()
                            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                            .unwrap_or_default(),
                    )
                }
                "index" => {
                    let Some(Token::Str(k)) = toks.get(2) else {
                        bail!("template: index needs a key");
                    };
                    match &a {
                        Value::Object(m) => m.get(k).cloned().unwrap_or(Value::Null),
                        Value::Array(items) => k
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| items.get(i).cloned())
                            .unwrap_or(Value::Null),
                        _ => bail!("template: can't index item of type {}", kind(&a)),
                    }
                }
                "join" => {
                    let Some(Token::Str(sep)) = toks.get(2) else {
                        bail!("template: join needs a separator");
                    };
                    match &a {
                        Value::Array(items) => {
                            Value::String(items.iter().map(to_text).collect::<Vec<_>>().join(sep))
                        }
                        other => Value::String(to_text(other)),
                    }
                }
                other => bail!("template: function {other:?} not defined"),
            })
        }
        _ => arg(toks, v),
    }
}

/// Go's `%v` rendering of a value.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(to_text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", to_text(&m[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

/// Prints rows with a `--format`: `table ...`, `json`, or a template; `None`
/// prints Docker's default table `default`.
pub fn print_rows(
    format: Option<&str>,
    default: &str,
    headers: &Value,
    rows: &[Value],
) -> Result<()> {
    let fmt = format.filter(|f| !f.is_empty()).unwrap_or(default);
    if fmt == "json" {
        for r in rows {
            let mut r = r.clone();
            if let Some(m) = r.as_object_mut() {
                m.remove("LabelMap");
            }
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(());
    }
    let t = Template::parse(fmt)?;
    if t.table {
        let mut lines = vec![t.render(headers)?];
        for r in rows {
            lines.push(t.render(r)?);
        }
        let cells: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split('\t').map(String::from).collect())
            .collect();
        print!("{}", table(&cells));
    } else {
        for r in rows {
            println!("{}", t.render(r)?);
        }
    }
    Ok(())
}

/// `k=v` flags (`--label`, `--opt`) as a map; a bare `k` maps to "".
pub fn kv_map(list: &[String]) -> std::collections::BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `inspect` of several objects at `paths`: the found ones printed together (JSON
/// array, or a template per object), an error line for each missing one; exit 1 if
/// any was missing.
pub async fn inspect_each(
    c: &crate::client::Client,
    paths: &[String],
    format: Option<&str>,
) -> Result<i32> {
    let mut all = Vec::new();
    let mut code = 0;
    for p in paths {
        match c.get_json::<Value>(p).await {
            Ok(v) => all.push(v),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    match format.filter(|f| !f.is_empty()) {
        Some(f) => {
            let t = Template::parse(f)?;
            for v in &all {
                println!("{}", t.render(v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&all)?),
    }
    Ok(code)
}

/// A prune: posts to `path` with `filters`, prints what `key` lists under
/// `heading`, and returns the answer.
pub async fn prune(
    c: &crate::client::Client,
    path: &str,
    filters: &[String],
    key: &str,
    heading: &str,
) -> Result<Value> {
    use http_body_util::BodyExt;
    let resp = c
        .post(&format!(
            "{path}?filters={}",
            crate::containers::filters_param(filters)?
        ))
        .await?;
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
    let gone: Vec<&str> = v[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !gone.is_empty() {
        println!("{heading}");
        for g in gone {
            println!("{g}");
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_field_names_find_the_json_keys() {
        let v = serde_json::json!({"Id": "abc", "Server": {"ApiVersion": "1.51"}});
        let t = Template::parse("{{.ID}} {{.Server.APIVersion}} {{.Id}}").unwrap();
        assert_eq!(t.render(&v).unwrap(), "abc 1.51 abc");
        assert!(Template::parse("{{.Nope}}").unwrap().render(&v).is_err());
    }
    use serde_json::json;

    #[test]
    fn tables_pad_like_tabwriter() {
        let t = table(&[
            vec!["CONTAINER ID".into(), "IMAGE".into(), "NAMES".into()],
            vec!["abc".into(), "busybox".into(), "web".into()],
        ]);
        assert_eq!(
            t,
            "CONTAINER ID   IMAGE     NAMES\nabc            busybox   web\n"
        );
    }

    #[test]
    fn templates() {
        let v = json!({"State": {"Status": "running", "Pid": 42}, "Config": {"Labels": {"a": "b"}, "Env": ["X=1", "Y=2"]}, "LabelMap": {"k": "v"}});
        let r = |s: &str| Template::parse(s).unwrap().render(&v).unwrap();
        assert_eq!(r("{{.State.Status}}"), "running");
        assert_eq!(
            r("{{ .State.Pid }} {{json .Config.Labels}}"),
            "42 {\"a\":\"b\"}"
        );
        assert_eq!(r("{{index .Config.Labels \"a\"}}"), "b");
        assert_eq!(r("{{join .Config.Env \",\"}}"), "X=1,Y=2");
        assert_eq!(r("{{.Label \"k\"}}"), "v");
        assert_eq!(r("{{upper .State.Status}}"), "RUNNING");
        assert!(Template::parse("{{nope .X}}").is_err());
        assert!(Template::parse("{{.X").is_err());
        assert!(Template::parse("{{.Nope.X}}").unwrap().render(&v).is_err());
        assert!(Template::parse("table {{.ID}}\\t{{.Names}}").unwrap().table);
    }
}
