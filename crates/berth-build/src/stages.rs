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
}
