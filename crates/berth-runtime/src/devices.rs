//! Device access on cgroup v2: the v1 `devices` controller's allow rules ("c 1:3
//! rwm", "b *:* m", "a") compiled into an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE, which the kernel runs on every open and mknod of a
//! device node by a process of the cgroup it is attached to (see
//! [`crate::sys::attach_device_program`]). Anything no rule allows is refused, as
//! with v1's `devices.deny a` followed by the allows.

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid device rule {0:?}")]
pub struct BadRule(pub String);

/// A parsed allow rule; None in a field means any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// 'c', 'b', or None for both ("a").
    pub kind: Option<char>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// BPF_DEVCG_ACC_* bits.
    pub access: u32,
}

const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

impl Rule {
    /// Parses the v1 `devices.allow` syntax: `TYPE MAJOR:MINOR ACCESS` or `a`.
    pub fn parse(s: &str) -> Result<Rule, BadRule> {
        let bad = || BadRule(s.to_string());
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts == ["a"] {
            return Ok(Rule {
                kind: None,
                major: None,
                minor: None,
                access: ACC_MKNOD | ACC_READ | ACC_WRITE,
            });
        }
        let [kind, nums, acc] = parts[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "c" => Some('c'),
            "b" => Some('b'),
            "a" => None,
            _ => return Err(bad()),
        };
        let (maj, min) = nums.split_once(':').ok_or_else(bad)?;
        let num = |n: &str| -> Result<Option<u32>, BadRule> {
            if n == "*" {
                Ok(None)
            } else {
                n.parse().map(Some).map_err(|_| bad())
            }
        };
        let mut access = 0;
        for c in acc.chars() {
            access |= match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => return Err(bad()),
            };
        }
        if access == 0 {
            return Err(bad());
        }
        Ok(Rule {
            kind,
            major: num(maj)?,
            minor: num(min)?,
            access,
        })
    }
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The program for `rules`: with `struct bpf_cgroup_dev_ctx` in r1 (access_type =
/// access << 16 | type, major, minor), r2 = type, r3 = access, r4 = major, r5 =
/// minor; then one block per rule that jumps to the next block on any mismatch
/// and otherwise returns 1; 0 at the end.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules {
        let mut block = Vec::new();
        // Jumps are patched to the block's end once its length is known.
        if let Some(k) = r.kind {
            block.push(insn(
                JMP_JNE_K,
                2,
                0,
                0,
                if k == 'b' { DEV_BLOCK } else { DEV_CHAR },
            ));
        }
        let all = ACC_MKNOD | ACC_READ | ACC_WRITE;
        if r.access != all {
            // Every access asked for must be among the rule's.
            block.push(insn(ALU32_MOV_X, 0, 3, 0, 0));
            block.push(insn(ALU32_AND_K, 0, 0, 0, (all & !r.access) as i32));
            block.push(insn(JMP_JNE_K, 0, 0, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JMP_JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JMP_JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let n = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K {
                // To the instruction after this block.
                ins.off = (n - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Docker's default rules ([`crate::cgroups::DEVICE_ALLOW`]) and `extra`, parsed.
pub fn rules(extra: &[String]) -> Result<Vec<Rule>, BadRule> {
    crate::cgroups::DEVICE_ALLOW
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .map(Rule::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one access, as the kernel would (the subset of eBPF
    /// that [`program`] emits).
    fn run(p: &[Insn], kind: i32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4] as u64,
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn dockers_defaults_allow_the_standard_nodes_and_mknod_only() {
        let p = program(&rules(&[]).unwrap());
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 7), 1, "a pts");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 11), 0, "/dev/kmsg");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "/dev/sda");
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1, "mknod of any node");
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD | ACC_READ, 8, 0), 0);
    }

    #[test]
    fn extra_rules_allow_only_what_they_say() {
        let p = program(&rules(&["c 10:200 rw".into(), "b 7:* r".into()]).unwrap());
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 10, 200), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 201), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 7, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 7, 3), 0);
        let all = program(&[Rule::parse("a").unwrap()]);
        assert_eq!(run(&all, DEV_BLOCK, ACC_WRITE, 8, 0), 1);
    }

    #[test]
    fn bad_rules_are_refused() {
        for r in ["x 1:3 rwm", "c 1 rwm", "c 1:3", "c 1:3 q", "c a:3 r"] {
            assert!(Rule::parse(r).is_err(), "{r}");
        }
    }
}
