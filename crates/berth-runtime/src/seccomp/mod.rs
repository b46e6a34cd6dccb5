//! Seccomp: Docker's JSON profile format, and berth's own compiler from a profile to
//! a classic BPF program the kernel runs on every system call of the container.
//!
//! A profile is first *resolved* for one container, as moby does it: the entries
//! whose `includes`/`excludes` (capabilities, architectures, minimum kernel) do not
//! hold for it are dropped, and `archMap` picks the native architecture and its
//! sub-architectures. What is left is compiled:
//!
//! ```text
//!   load arch ─┬─ AUDIT_ARCH_X86_64 ─▶ load nr ─▶ binary search over number ranges
//!              ├─ AUDIT_ARCH_I386   ─▶ load nr ─▶ binary search over number ranges
//!              └─ otherwise: the default action
//! ```
//!
//! Every system call number maps to a *block*: a list of rules (argument conditions
//! and an action), first match wins, then the default action. Runs of consecutive
//! numbers with equal blocks collapse into one range, so Docker's profile needs a
//! thousand instructions for its three ABIs and a lookup costs about ten comparisons. Numbers past
//! the newest system call berth knows of answer ENOSYS rather than the default
//! action (as runc does), so that a C library falls back to an older call instead
//! of failing. x32 calls share the x86_64 audit arch and are told apart by
//! `__X32_SYSCALL_BIT`; without x32 in the profile they get the default action.

mod default_profile;
mod syscalls;

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SeccompError {
    #[error("decoding seccomp profile failed: {0}")]
    Json(String),
    #[error("seccomp profile: {0}")]
    Invalid(String),
    #[error("seccomp profile: the program is {0} instructions long, more than the kernel's 4096")]
    TooLong(usize),
}

/// Docker's seccomp profile (moby `profiles/seccomp` / the OCI runtime spec).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    pub syscalls: Option<Vec<SyscallEntry>>,
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub flags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyscallEntry {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub includes: Option<Filter>,
    #[serde(default)]
    pub excludes: Option<Filter>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

impl Profile {
    pub fn parse(json: &str) -> Result<Profile, SeccompError> {
        let p: Profile =
            serde_json::from_str(json).map_err(|e| SeccompError::Json(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// berth's default: Docker's default profile, applied to every container that
    /// does not ask for another one or for `unconfined`.
    pub fn default_profile() -> Profile {
        default_profile::profile()
    }

    /// The checks moby and runc make before anything is applied.
    fn validate(&self) -> Result<(), SeccompError> {
        let bad = |s: String| Err(SeccompError::Invalid(s));
        Action::parse(&self.default_action, self.default_errno_ret)?;
        if !self.architectures.is_empty() && self.arch_map.as_ref().is_some_and(|m| !m.is_empty()) {
            return bad("'architectures' and 'archMap' cannot both be given".into());
        }
        if self.listener_path.as_deref().is_some_and(|p| !p.is_empty()) {
            return bad("berth does not support 'listenerPath' (SCMP_ACT_NOTIFY) yet".into());
        }
        for f in self.flags.iter().flatten() {
            if !["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"].contains(&f.as_str())
            {
                return bad(format!("unknown flag {f:?}"));
            }
        }
        for a in self
            .architectures
            .iter()
            .chain(self.arch_map.iter().flatten().flat_map(|m| {
                std::iter::once(&m.architecture).chain(m.sub_architectures.iter().flatten())
            }))
        {
            if !KNOWN_ARCHES.contains(&a.as_str()) {
                return bad(format!("unknown architecture {a:?}"));
            }
        }
        for s in self.syscalls.iter().flatten() {
            let named = s.name.as_deref().is_some_and(|n| !n.is_empty());
            let names = s.names.as_ref().is_some_and(|n| !n.is_empty());
            if named && names {
                return bad("use either 'name' or 'names', not both".into());
            }
            Action::parse(&s.action, s.errno_ret)?;
            for a in s.args.iter().flatten() {
                if a.index > 5 {
                    return bad(format!(
                        "argument index {} is beyond the 6 arguments",
                        a.index
                    ));
                }
                Op::parse(&a.op)?;
            }
            for f in [&s.includes, &s.excludes].into_iter().flatten() {
                if let Some(k) = &f.min_kernel {
                    parse_kernel(k).ok_or_else(|| {
                        SeccompError::Invalid(format!("invalid kernel version {k:?}"))
                    })?;
                }
                for c in f.caps.iter().flatten() {
                    if crate::caps::from_name(c).is_none() {
                        return bad(format!("unknown capability {c:?}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Compiles the profile for a container with the capability bounding set `caps`
    /// (bit numbers), on a kernel of version `kernel` (major, minor).
    pub fn compile(&self, caps: &[u8], kernel: (u32, u32)) -> Result<Program, SeccompError> {
        let target = Target::native();
        let default = Action::parse(&self.default_action, self.default_errno_ret)?;
        let arches = self.arches(target);
        let caps_mask = crate::caps::mask(caps);
        let has_cap =
            |c: &String| crate::caps::from_name(c).is_some_and(|b| caps_mask & (1u64 << b) != 0);
        // Per architecture: syscall number -> block.
        let mut blocks: BTreeMap<&str, BTreeMap<u32, Vec<Rule>>> = BTreeMap::new();
        for entry in self.syscalls.iter().flatten() {
            if let Some(inc) = &entry.includes {
                if inc
                    .arches
                    .as_ref()
                    .is_some_and(|a| !a.is_empty() && !a.iter().any(|x| x == target.go_arch))
                {
                    continue;
                }
                if !inc.caps.iter().flatten().all(has_cap) {
                    continue;
                }
                if inc
                    .min_kernel
                    .as_deref()
                    .and_then(parse_kernel)
                    .is_some_and(|k| kernel < k)
                {
                    continue;
                }
            }
            if let Some(exc) = &entry.excludes {
                if exc
                    .arches
                    .as_ref()
                    .is_some_and(|a| a.iter().any(|x| x == target.go_arch))
                {
                    continue;
                }
                if exc.caps.iter().flatten().any(has_cap) {
                    continue;
                }
                if exc
                    .min_kernel
                    .as_deref()
                    .and_then(parse_kernel)
                    .is_some_and(|k| kernel >= k)
                {
                    continue;
                }
            }
            let action = Action::parse(&entry.action, entry.errno_ret.or(self.default_errno_ret))?;
            // libseccomp refuses a rule that does what the default does; runc skips it.
            if action == default {
                continue;
            }
            let args: Vec<Cond> = entry
                .args
                .iter()
                .flatten()
                .map(|a| {
                    Ok(Cond {
                        index: a.index as u8,
                        op: Op::parse(&a.op)?,
                        value: a.value,
                        value_two: a.value_two,
                    })
                })
                .collect::<Result<_, SeccompError>>()?;
            // As runc: conditions on distinct arguments are ANDed in one rule; two on
            // the same argument become separate rules (ORed).
            let mut seen = [false; 6];
            let repeated = args
                .iter()
                .any(|c| std::mem::replace(&mut seen[c.index as usize], true));
            let rules: Vec<Rule> = if repeated {
                args.iter()
                    .map(|c| Rule {
                        conds: vec![*c],
                        action,
                    })
                    .collect()
            } else {
                vec![Rule {
                    conds: args,
                    action,
                }]
            };
            let names = entry.names.iter().flatten().chain(entry.name.iter());
            for name in names {
                for arch in &arches {
                    if let Some(nr) = arch.lookup(name) {
                        blocks
                            .entry(arch.name)
                            .or_default()
                            .entry(nr)
                            .or_default()
                            .extend(rules.iter().cloned());
                    }
                }
            }
        }
        let mut asm = Asm::default();
        asm.stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARCH);
        let mut arch_labels = Vec::new();
        let audits: Vec<u32> = {
            let mut a: Vec<u32> = arches.iter().map(|x| x.audit).collect();
            a.dedup();
            a
        };
        for audit in &audits {
            let l = asm.label();
            asm.jump_if(BPF_JEQ, *audit, l);
            arch_labels.push((*audit, l));
        }
        asm.ret(default.ret());
        for (audit, label) in arch_labels {
            asm.place(label);
            asm.stmt(BPF_LD | BPF_W | BPF_ABS, OFF_NR);
            let mut starts: BTreeMap<u32, (u8, Block)> = BTreeMap::new();
            starts.insert(0, (0, Block::Default));
            for arch in arches.iter().filter(|a| a.audit == audit) {
                let empty = BTreeMap::new();
                let b = blocks.get(arch.name).unwrap_or(&empty);
                arch.intervals(b, default, &mut starts);
            }
            let mut intervals: Vec<(u32, Block)> = Vec::new();
            for (start, (_, block)) in starts {
                // Neighbours that do the same thing are one range.
                if intervals.last().map(|(_, b)| b) != Some(&block) {
                    intervals.push((start, block));
                }
            }
            asm.tree(&intervals, default);
        }
        let prog = asm.finish();
        if prog.len() > 4096 {
            return Err(SeccompError::TooLong(prog.len()));
        }
        Ok(Program(prog))
    }

    /// The architectures the filter covers: the native one and, through `archMap`
    /// or `architectures`, its sub-architectures (always at least the native one).
    fn arches(&self, target: Target) -> Vec<&'static ArchTable> {
        let mut names: Vec<&str> = Vec::new();
        if let Some(map) = &self.arch_map {
            for m in map {
                if m.architecture == target.scmp {
                    names.push(&m.architecture);
                    names.extend(m.sub_architectures.iter().flatten().map(String::as_str));
                }
            }
        } else {
            names.extend(self.architectures.iter().map(String::as_str));
        }
        if !names.contains(&target.scmp) {
            names.insert(0, target.scmp);
        }
        let mut out: Vec<&'static ArchTable> =
            ARCHES.iter().filter(|a| names.contains(&a.scmp)).collect();
        // Native first, then the others, in a stable order.
        out.sort_by_key(|a| a.scmp != target.scmp);
        out
    }
}

/// A compiled filter: classic BPF instructions, ready for `seccomp(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program(pub Vec<Insn>);

/// One `struct sock_filter` (same fields, same order, same layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Program {
    /// Packs each instruction into one u64 (code, jt, jf, k), for the spec's JSON.
    pub fn encode(&self) -> Vec<u64> {
        self.0
            .iter()
            .map(|i| i.code as u64 | (i.jt as u64) << 16 | (i.jf as u64) << 24 | (i.k as u64) << 32)
            .collect()
    }

    pub fn decode(words: &[u64]) -> Program {
        Program(
            words
                .iter()
                .map(|w| Insn {
                    code: *w as u16,
                    jt: (*w >> 16) as u8,
                    jf: (*w >> 24) as u8,
                    k: (*w >> 32) as u32,
                })
                .collect(),
        )
    }

    /// Runs the program on one system call, as the kernel would: the return value.
    /// For tests and for checking a profile without loading it.
    pub fn evaluate(&self, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                OFF_NR => nr,
                OFF_ARCH => arch,
                o if (16..64).contains(&o) => {
                    let a = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                _ => 0,
            }
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = self.0[pc];
            pc += 1;
            match i.code {
                c if c == BPF_LD | BPF_W | BPF_ABS => acc = word(i.k),
                c if c == BPF_ALU | BPF_AND | BPF_K => acc &= i.k,
                c if c == BPF_RET | BPF_K => return i.k,
                c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
                c => {
                    let taken = match c & !BPF_JMP {
                        BPF_JEQ => acc == i.k,
                        BPF_JGT => acc > i.k,
                        BPF_JGE => acc >= i.k,
                        BPF_JSET => acc & i.k != 0,
                        _ => panic!("unexpected instruction {i:?}"),
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
            }
        }
    }
}

/// What the kernel does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u16),
    KillThread,
    KillProcess,
    Trap,
    Trace(u16),
    Log,
}

impl Action {
    fn parse(s: &str, errno: Option<u32>) -> Result<Action, SeccompError> {
        let errno = errno.unwrap_or(libc::EPERM as u32);
        Ok(match s {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(errno as u16),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_TRACE" => Action::Trace(errno as u16),
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => {
                return Err(SeccompError::Invalid(
                    "berth does not support SCMP_ACT_NOTIFY yet".into(),
                ))
            }
            other => return Err(SeccompError::Invalid(format!("unknown action {other:?}"))),
        })
    }

    /// The `SECCOMP_RET_*` value.
    pub fn ret(self) -> u32 {
        match self {
            Action::KillProcess => 0x8000_0000,
            Action::KillThread => 0,
            Action::Trap => 0x0003_0000,
            Action::Errno(e) => 0x0005_0000 | e as u32,
            Action::Trace(d) => 0x7ff0_0000 | d as u32,
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

impl Op {
    fn parse(s: &str) -> Result<Op, SeccompError> {
        Ok(match s {
            "SCMP_CMP_NE" => Op::Ne,
            "SCMP_CMP_LT" => Op::Lt,
            "SCMP_CMP_LE" => Op::Le,
            "SCMP_CMP_EQ" => Op::Eq,
            "SCMP_CMP_GE" => Op::Ge,
            "SCMP_CMP_GT" => Op::Gt,
            "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
            other => return Err(SeccompError::Invalid(format!("unknown operator {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    index: u8,
    op: Op,
    value: u64,
    value_two: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    conds: Vec<Cond>,
    action: Action,
}

/// What a range of syscall numbers does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Default,
    /// Past the newest known syscall: ENOSYS, so that libc falls back.
    Unknown,
    Rules(Vec<Rule>, bool),
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

/// The running kernel's version (major, minor), from uname.
pub fn kernel_version() -> (u32, u32) {
    let u = rustix::system::uname();
    let release = u.release().to_string_lossy();
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

const KNOWN_ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
];

/// The host as profiles name it.
#[derive(Debug, Clone, Copy)]
struct Target {
    /// libseccomp's name (`archMap`).
    scmp: &'static str,
    /// Go's GOARCH (`includes.arches`).
    go_arch: &'static str,
}

impl Target {
    fn native() -> Target {
        #[cfg(target_arch = "x86_64")]
        return Target {
            scmp: "SCMP_ARCH_X86_64",
            go_arch: "amd64",
        };
        #[cfg(not(target_arch = "x86_64"))]
        compile_error!("berth's seccomp tables cover x86_64 only so far");
    }
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One ABI the filter can cover.
struct ArchTable {
    name: &'static str,
    scmp: &'static str,
    audit: u32,
    table: &'static [(&'static str, u32)],
    /// The numbers this ABI owns under its audit arch.
    range: (u32, u32),
    /// Compares only the low 32 bits of arguments (32-bit ABIs, as libseccomp).
    narrow: bool,
}

const ARCHES: &[ArchTable] = &[
    ArchTable {
        name: "x86_64",
        scmp: "SCMP_ARCH_X86_64",
        audit: AUDIT_ARCH_X86_64,
        table: syscalls::X86_64,
        range: (0, X32_SYSCALL_BIT),
        narrow: false,
    },
    ArchTable {
        name: "x32",
        scmp: "SCMP_ARCH_X32",
        audit: AUDIT_ARCH_X86_64,
        table: syscalls::X32,
        range: (X32_SYSCALL_BIT, u32::MAX),
        narrow: true,
    },
    ArchTable {
        name: "x86",
        scmp: "SCMP_ARCH_X86",
        audit: AUDIT_ARCH_I386,
        table: syscalls::I386,
        range: (0, u32::MAX),
        narrow: true,
    },
];

impl ArchTable {
    fn lookup(&self, name: &str) -> Option<u32> {
        self.table
            .binary_search_by(|(n, _)| n.cmp(&name))
            .ok()
            .map(|i| self.table[i].1)
    }

    /// Adds this ABI's ranges to `out`: range start -> (priority, block), where a
    /// range ends at the next start. A call with rules beats this ABI's fallback,
    /// which beats the end marker of a neighbouring ABI.
    fn intervals(
        &self,
        blocks: &BTreeMap<u32, Vec<Rule>>,
        default: Action,
        out: &mut BTreeMap<u32, (u8, Block)>,
    ) {
        let newest = self
            .table
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(self.range.0);
        // An allow-by-default profile allows unknown calls too.
        let fallback = |nr: u32| {
            if default != Action::Allow && nr > newest {
                Block::Unknown
            } else {
                Block::Default
            }
        };
        let mut put = |start: u32, prio: u8, block: Block| match out.get(&start) {
            Some((p, _)) if *p >= prio => {}
            _ => {
                out.insert(start, (prio, block));
            }
        };
        put(self.range.0, 2, fallback(self.range.0));
        for (nr, rules) in blocks {
            put(*nr, 3, Block::Rules(rules.clone(), self.narrow));
            if *nr + 1 < self.range.1 {
                put(nr + 1, 2, fallback(nr + 1));
            }
        }
        if newest + 1 < self.range.1 {
            put(newest + 1, 2, fallback(newest + 1));
        }
        if self.range.1 != u32::MAX {
            put(self.range.1, 1, Block::Default);
        }
    }
}

// Classic BPF opcodes (linux/filter.h).
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_K: u16 = 0x00;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;
// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

fn off_arg(index: u8, high: bool) -> u32 {
    // Little-endian: the low word first.
    16 + 8 * index as u32 + if high { 4 } else { 0 }
}

#[derive(Clone, Copy)]
struct Label(usize);

enum Item {
    Insn(Insn),
    /// An unconditional jump to a label (32-bit offset).
    Ja(Label),
    Place(Label),
}

/// A tiny assembler: every conditional jump skips 0 or 1 instruction and reaches
/// its label through an unconditional `ja`, whose offset is 32 bits wide. Labels
/// are only ever placed after their jumps (classic BPF jumps forward only).
#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    fn place(&mut self, l: Label) {
        self.items.push(Item::Place(l));
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.items.push(Item::Insn(Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    fn ret(&mut self, k: u32) {
        self.stmt(BPF_RET | BPF_K, k);
    }

    /// Goes to `target` when `acc <op> k` holds.
    fn jump_if(&mut self, op: u16, k: u32, target: Label) {
        self.items.push(Item::Insn(Insn {
            code: BPF_JMP | op | BPF_K,
            jt: 0,
            jf: 1,
            k,
        }));
        self.items.push(Item::Ja(target));
    }

    /// Goes to `target` when `acc <op> k` does not hold.
    fn jump_unless(&mut self, op: u16, k: u32, target: Label) {
        self.items.push(Item::Insn(Insn {
            code: BPF_JMP | op | BPF_K,
            jt: 1,
            jf: 0,
            k,
        }));
        self.items.push(Item::Ja(target));
    }

    /// A binary search over `intervals` (sorted starts; each ends where the next
    /// begins), with the syscall number in the accumulator.
    fn tree(&mut self, intervals: &[(u32, Block)], default: Action) {
        if intervals.len() == 1 {
            self.block(&intervals[0].1, default);
            return;
        }
        let mid = intervals.len() / 2;
        let right = self.label();
        self.jump_if(BPF_JGE, intervals[mid].0, right);
        self.tree(&intervals[..mid], default);
        self.place(right);
        self.tree(&intervals[mid..], default);
    }

    fn block(&mut self, b: &Block, default: Action) {
        match b {
            Block::Default => self.ret(default.ret()),
            Block::Unknown => self.ret(Action::Errno(libc::ENOSYS as u16).ret()),
            Block::Rules(rules, narrow) => {
                for r in rules {
                    let next = self.label();
                    for c in &r.conds {
                        self.cond(c, *narrow, next);
                    }
                    self.ret(r.action.ret());
                    self.place(next);
                    if r.conds.is_empty() {
                        return;
                    }
                }
                self.ret(default.ret());
            }
        }
    }

    /// Falls through when the condition holds, goes to `fail` otherwise.
    fn cond(&mut self, c: &Cond, narrow: bool, fail: Label) {
        let (vlo, vhi) = (c.value as u32, (c.value >> 32) as u32);
        let lo = off_arg(c.index, false);
        let hi = off_arg(c.index, true);
        let ld = |a: &mut Asm, off| a.stmt(BPF_LD | BPF_W | BPF_ABS, off);
        let pass = self.label();
        match c.op {
            Op::Eq => {
                if !narrow {
                    ld(self, hi);
                    self.jump_unless(BPF_JEQ, vhi, fail);
                }
                ld(self, lo);
                self.jump_unless(BPF_JEQ, vlo, fail);
            }
            Op::Ne => {
                if !narrow {
                    ld(self, hi);
                    self.jump_unless(BPF_JEQ, vhi, pass);
                }
                ld(self, lo);
                self.jump_if(BPF_JEQ, vlo, fail);
            }
            Op::MaskedEq => {
                let (dlo, dhi) = (c.value_two as u32, (c.value_two >> 32) as u32);
                if !narrow {
                    ld(self, hi);
                    self.stmt(BPF_ALU | BPF_AND | BPF_K, vhi);
                    self.jump_unless(BPF_JEQ, dhi, fail);
                }
                ld(self, lo);
                self.stmt(BPF_ALU | BPF_AND | BPF_K, vlo);
                self.jump_unless(BPF_JEQ, dlo, fail);
            }
            Op::Gt | Op::Ge => {
                if !narrow {
                    ld(self, hi);
                    self.jump_if(BPF_JGT, vhi, pass);
                    self.jump_unless(BPF_JEQ, vhi, fail);
                }
                ld(self, lo);
                let op = if c.op == Op::Gt { BPF_JGT } else { BPF_JGE };
                self.jump_unless(op, vlo, fail);
            }
            Op::Lt | Op::Le => {
                if !narrow {
                    ld(self, hi);
                    self.jump_unless(BPF_JGE, vhi, pass);
                    self.jump_unless(BPF_JEQ, vhi, fail);
                }
                ld(self, lo);
                // lo < v  <=>  !(lo >= v);  lo <= v  <=>  !(lo > v)
                let op = if c.op == Op::Lt { BPF_JGE } else { BPF_JGT };
                self.jump_if(op, vlo, fail);
            }
        }
        self.place(pass);
    }

    /// Lays the program out and resolves every label.
    fn finish(self) -> Vec<Insn> {
        let mut at = vec![usize::MAX; self.labels];
        let mut n = 0;
        for it in &self.items {
            match it {
                Item::Place(l) => at[l.0] = n,
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        for it in self.items {
            match it {
                Item::Insn(i) => out.push(i),
                Item::Ja(l) => {
                    let here = out.len() + 1;
                    let to = at[l.0];
                    assert!(to != usize::MAX && to >= here, "BPF jumps go forward");
                    out.push(Insn {
                        code: BPF_JMP | BPF_JA,
                        jt: 0,
                        jf: 0,
                        k: (to - here) as u32,
                    });
                }
                Item::Place(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
