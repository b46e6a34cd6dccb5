//! Capability names and Docker's default set.

/// Capability names in bit order (linux/capability.h), without the `CAP_` prefix.
const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capabilities (moby `oci/caps/defaults.go`): 14 of them, giving
/// the effective mask 0x00000000a80425fb.
pub const DOCKER_DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Bit number of a capability name, with or without `CAP_`, in any case.
pub fn from_name(name: &str) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u8)
}

/// Bit numbers of Docker's default set.
pub fn docker_default() -> Vec<u8> {
    DOCKER_DEFAULT
        .iter()
        .map(|n| from_name(n).expect("default capability names are known"))
        .collect()
}

/// Every capability this kernel knows (`--privileged`).
pub fn all(cap_last_cap: u8) -> Vec<u8> {
    (0..=cap_last_cap).collect()
}

/// The 64-bit mask of a set of capability bits, as /proc/<pid>/status shows it.
pub fn mask(bits: &[u8]) -> u64 {
    bits.iter().fold(0u64, |m, b| m | (1u64 << b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_is_dockers_mask() {
        assert_eq!(mask(&docker_default()), 0xa80425fb);
        assert_eq!(docker_default().len(), 14);
    }

    #[test]
    fn names_parse_with_prefix_and_case() {
        assert_eq!(from_name("cap_net_admin"), Some(12));
        assert_eq!(from_name("SYS_ADMIN"), Some(21));
        assert_eq!(from_name("NOPE"), None);
    }
}
