//! The Dockerfile as stages: the global ARGs before the first FROM, each stage's
//! base and instructions, which stages a target needs, and in what order.

use crate::instruction::{instruction, Instruction, Kind};
use crate::parser::{parse, Dockerfile, ParseError};
use crate::shell::{self, Vars};

#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// Lower case, as BuildKit compares stage names.
    pub name: Option<String>,
    /// The FROM argument as written.
    pub base: String,
    pub platform: Option<String>,
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub escape: char,
    pub warnings: Vec<String>,
    /// ARGs before the first FROM, with their defaults as written.
    pub meta_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

/// Where a stage's base or a `--from` points.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Stage(usize),
    Image(String),
}

impl Plan {
    pub fn parse(text: &str) -> Result<Plan, ParseError> {
        let Dockerfile {
            escape,
            warnings,
            nodes,
            ..
        } = parse(text)?;
        let mut meta_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for node in nodes {
            let ins = instruction(node, escape)?;
            match (&ins.kind, stages.last_mut()) {
                (
                    Kind::From {
                        image,
                        alias,
                        platform,
                    },
                    _,
                ) => {
                    if let Some(a) = alias {
                        if stages.iter().any(|s| s.name.as_deref() == Some(a)) {
                            return Err(ParseError {
                                line: ins.node.line,
                                message: format!("duplicate stage name {a:?}"),
                            });
                        }
                    }
                    stages.push(Stage {
                        index: stages.len(),
                        name: alias.clone(),
                        base: image.clone(),
                        platform: platform.clone(),
                        from: ins.clone(),
                        instructions: Vec::new(),
                    });
                }
                (Kind::Arg(args), None) => meta_args.extend(args.iter().cloned()),
                (_, None) => {
                    return Err(ParseError {
                        line: ins.node.line,
                        message: "no build stage in current context".into(),
                    })
                }
                (_, Some(stage)) => stage.instructions.push(ins),
            }
        }
        if stages.is_empty() {
            return Err(ParseError {
                line: 1,
                message: "the Dockerfile has no FROM instruction (file with no instructions)"
                    .into(),
            });
        }
        Ok(Plan {
            escape,
            warnings,
            meta_args,
            stages,
        })
    }

    /// The stage a `--target` names (the last one without).
    pub fn target(&self, target: Option<&str>) -> Result<usize, String> {
        match target.filter(|t| !t.is_empty()) {
            None => Ok(self.stages.len() - 1),
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t.to_lowercase()))
                .ok_or_else(|| format!("target stage {t:?} could not be found")),
        }
    }

    /// A stage by name or number among those before `before` (a later stage is an
    /// image name, as BuildKit reads it).
    pub fn stage_ref(&self, r: &str, before: usize) -> Option<usize> {
        let lower = r.to_lowercase();
        if let Some(i) = self.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(&lower))
        {
            return Some(i);
        }
        r.parse::<usize>().ok().filter(|i| *i < before)
    }

    /// The base of stage `i`, its FROM expanded with the global ARGs.
    pub fn base(&self, i: usize, meta: &Vars) -> Result<Source, String> {
        let s = &self.stages[i];
        let name = shell::expand(&s.base, meta, self.escape).map_err(|e| e.to_string())?;
        if name.is_empty() {
            return Err(format!("base name ({}) should not be blank", s.base));
        }
        Ok(match self.stage_ref(&name, i) {
            Some(j) => Source::Stage(j),
            None => Source::Image(name),
        })
    }

    /// The stages stage `i` reads from: its base, `COPY --from`, `RUN --mount from=`.
    pub fn deps(&self, i: usize, meta: &Vars) -> Result<Vec<usize>, String> {
        let mut out = Vec::new();
        if let Source::Stage(j) = self.base(i, meta)? {
            out.push(j);
        }
        for ins in &self.stages[i].instructions {
            let froms: Vec<String> = match &ins.kind {
                Kind::Copy(c) => c.from.iter().cloned().collect(),
                Kind::Run { mounts, .. } => mounts
                    .iter()
                    .filter_map(|m| {
                        m.split(',')
                            .find_map(|kv| kv.strip_prefix("from=").map(str::to_string))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for f in froms {
                let f = shell::expand(&f, meta, self.escape).unwrap_or(f);
                if let Some(j) = self.stage_ref(&f, i) {
                    if !out.contains(&j) {
                        out.push(j);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The stages the target needs, each after those it reads from.
    pub fn needed(&self, target: usize, meta: &Vars) -> Result<Vec<usize>, String> {
        let mut order = Vec::new();
        let mut seen = vec![false; self.stages.len()];
        fn visit(
            p: &Plan,
            i: usize,
            meta: &Vars,
            seen: &mut [bool],
            order: &mut Vec<usize>,
        ) -> Result<(), String> {
            if seen[i] {
                return Ok(());
            }
            seen[i] = true;
            for d in p.deps(i, meta)? {
                visit(p, d, meta, seen, order)?;
            }
            order.push(i);
            Ok(())
        }
        visit(self, target, meta, &mut seen, &mut order)?;
        Ok(order)
    }
}

/// What of the context a build reads: the paths its target's stages copy or bind
/// from it (as include patterns, wildcards kept), and the images its stages start
/// from (whose ONBUILD triggers may read more: the caller checks them). `None`
/// when that is the whole context or known only as the build runs (a source with
/// a variable in it), or when the Dockerfile does not plan.
pub fn context_paths(
    text: &str,
    target: Option<&str>,
    build_args: &std::collections::BTreeMap<String, String>,
) -> Option<(Vec<String>, Vec<String>)> {
    let plan = Plan::parse(text).ok()?;
    let mut meta = Vars::new();
    for (name, default) in &plan.meta_args {
        if let Some(v) = build_args.get(name) {
            meta.insert(name.clone(), v.clone());
        } else if let Some(d) = default {
            meta.insert(name.clone(), shell::expand(d, &meta, plan.escape).ok()?);
        }
    }
    let target = plan.target(target).ok()?;
    let mut paths: Vec<String> = Vec::new();
    let mut images = Vec::new();
    // A path relative to the context's root, or None for the root itself or one
    // known only later.
    let clean = |src: &str| -> Option<String> {
        if src.contains('$') {
            return None;
        }
        let parts: Vec<&str> = src
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.is_empty() || parts.contains(&"..") {
            return None;
        }
        Some(parts.join("/"))
    };
    for i in plan.needed(target, &meta).ok()? {
        if let Source::Image(name) = plan.base(i, &meta).ok()? {
            if name != "scratch" {
                images.push(name);
            }
        }
        for ins in &plan.stages[i].instructions {
            match &ins.kind {
                Kind::Copy(c) if c.from.is_none() => {
                    for src in &c.srcs {
                        let remote = c.add && (src.contains("://") || src.starts_with("git@"));
                        if src.starts_with("<<") || remote {
                            continue;
                        }
                        paths.push(clean(src)?);
                    }
                }
                Kind::Run { mounts, .. } => {
                    for m in mounts {
                        let kv: Vec<(&str, &str)> = m
                            .split(',')
                            .map(|f| f.split_once('=').unwrap_or((f, "")))
                            .collect();
                        let get =
                            |k: &[&str]| kv.iter().find(|(n, _)| k.contains(n)).map(|(_, v)| *v);
                        let bind = get(&["type"]).is_none_or(|t| t == "bind");
                        if bind && get(&["from"]).is_none() {
                            paths.push(clean(get(&["source", "src"]).unwrap_or(""))?);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    paths.sort();
    paths.dedup();
    Some((paths, images))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DF: &str = "ARG BASE=busybox\nFROM $BASE AS base\nRUN a\nFROM base AS build\nRUN b\nFROM busybox AS other\nRUN c\nFROM busybox\nCOPY --from=build /x /y\nRUN --mount=type=bind,from=other,target=/o true\n";

    #[test]
    fn targets_and_needed_stages() {
        let p = Plan::parse(DF).unwrap();
        assert_eq!(p.stages.len(), 4);
        assert_eq!(
            p.meta_args,
            [("BASE".to_string(), Some("busybox".to_string()))]
        );
        let meta: Vars = [("BASE".to_string(), "busybox".to_string())].into();
        assert_eq!(p.base(0, &meta).unwrap(), Source::Image("busybox".into()));
        assert_eq!(p.base(1, &meta).unwrap(), Source::Stage(0));
        assert_eq!(p.needed(3, &meta).unwrap(), [0, 1, 2, 3]);
        assert_eq!(
            p.needed(p.target(Some("BUILD")).unwrap(), &meta).unwrap(),
            [0, 1]
        );
        assert_eq!(p.target(Some("other")).unwrap(), 2);
        assert!(p
            .target(Some("nope"))
            .unwrap_err()
            .contains("could not be found"));
        assert!(Plan::parse("RUN x\n").is_err());
        assert!(Plan::parse("FROM a AS x\nFROM b AS x\n").is_err());
    }

    #[test]
    fn the_context_paths_a_target_reads() {
        let args = std::collections::BTreeMap::new();
        let df =
            "FROM busybox AS a\nCOPY ./src/ /src\nCOPY *.txt lib/*.c /x/\nCOPY <<EOF /h\nhi\nEOF\n\
                  RUN --mount=type=bind,source=tools,target=/t --mount=type=cache,target=/c true\n\
                  ADD https://example.invalid/f /f\n\
                  FROM a AS b\nCOPY --from=a /src /s\n\
                  FROM scratch AS c\nCOPY . /\n";
        let (paths, images) = context_paths(df, Some("b"), &args).unwrap();
        assert_eq!(paths, ["*.txt", "lib/*.c", "src", "tools"]);
        assert_eq!(images, ["busybox"]);
        // The whole context, or one known only later: everything.
        assert!(context_paths(df, Some("c"), &args).is_none());
        assert!(context_paths("FROM busybox\nARG D\nCOPY $D /d\n", None, &args).is_none());
        assert!(context_paths(
            "FROM busybox\nRUN --mount=type=bind,target=/m true\n",
            None,
            &args
        )
        .is_none());
        // Nothing of it.
        let (paths, _) = context_paths("FROM busybox\nRUN true\n", None, &args).unwrap();
        assert!(paths.is_empty());
    }
}
