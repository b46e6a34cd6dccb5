//! `--security-opt`: which seccomp profile a container gets and whether it runs with
//! no_new_privileges. Profiles are compiled here, once per profile and capability
//! set, and handed to the shim as BPF.

use crate::error::{ApiError, ApiResult};
use berth_api::HostConfig;
use berth_runtime::seccomp::Profile;
use berth_runtime::spec::SeccompFilter;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// The seccomp profile a container asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    /// The daemon's default: Docker's default profile, or the daemon's
    /// `seccomp-profile`.
    Default,
    /// `seccomp=builtin`: Docker's default profile, whatever the daemon's is.
    Builtin,
    Unconfined,
    /// A profile in Docker's JSON format, as the client sent it.
    Custom(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    /// `systempaths=unconfined`: no masked or read-only paths.
    pub system_paths_unconfined: bool,
    /// `writable-cgroups=true`: the cgroup filesystem mounted read-write.
    pub writable_cgroups: bool,
}

/// The Linux security modules this kernel runs (/sys/kernel/security/lsm; none
/// when securityfs is not mounted or lists nothing).
pub fn kernel_lsms() -> Vec<String> {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses `HostConfig.SecurityOpt` as dockerd does (`key=value`, or the older
/// `key:value`). Options berth does not implement are refused, never ignored.
pub fn parse(hc: &HostConfig) -> ApiResult<SecurityOpts> {
    parse_with(hc, false)
}

/// [`parse`], starting from the daemon's `no-new-privileges` (a container's own
/// `no-new-privileges=false` turns it off).
fn parse_with(hc: &HostConfig, no_new_privileges: bool) -> ApiResult<SecurityOpts> {
    let mut out = SecurityOpts {
        seccomp: Seccomp::Default,
        no_new_privileges,
        system_paths_unconfined: false,
        writable_cgroups: false,
    };
    let opts = hc
        .other
        .get("SecurityOpt")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    for opt in &opts {
        let Some(opt) = opt.as_str() else {
            return Err(ApiError::invalid("SecurityOpt must be a list of strings"));
        };
        if opt == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return Err(ApiError::invalid(format!(
                "invalid --security-opt 1: {opt:?}"
            )));
        };
        match key {
            "no-new-privileges" => {
                out.no_new_privileges = value
                    .parse::<bool>()
                    .map_err(|_| ApiError::invalid(format!("invalid --security-opt 2: {opt:?}")))?;
            }
            "seccomp" => {
                out.seccomp = match value {
                    "unconfined" => Seccomp::Unconfined,
                    "builtin" => Seccomp::Builtin,
                    "" => Seccomp::Default,
                    json => {
                        Profile::parse(json).map_err(|e| ApiError::invalid(e.to_string()))?;
                        Seccomp::Custom(json.to_string())
                    }
                };
            }
            // Asking for no confinement needs nothing of the kernel.
            "apparmor" if value == "unconfined" => {}
            "label" if value == "disable" => {}
            "apparmor" | "label" => {
                let (lsm, name) = if key == "apparmor" {
                    ("apparmor", "AppArmor")
                } else {
                    ("selinux", "SELinux")
                };
                return Err(if kernel_lsms().iter().any(|l| l == lsm) {
                    ApiError::not_implemented(format!(
                        "berth cannot apply {name} settings yet (--security-opt {opt})"
                    ))
                } else {
                    ApiError::invalid(format!(
                        "{name} is not enabled on this host, so --security-opt {opt} cannot be applied"
                    ))
                });
            }
            "systempaths" if value == "unconfined" => out.system_paths_unconfined = true,
            "writable-cgroups" => {
                out.writable_cgroups = value
                    .parse::<bool>()
                    .map_err(|_| ApiError::invalid(format!("invalid --security-opt 2: {opt:?}")))?;
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "invalid --security-opt 2: {opt:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// Compiled filters, by profile and capability set: a profile is compiled once,
/// not at every start.
#[derive(Default)]
pub struct Filters {
    cache: Mutex<HashMap<(u64, u64), Arc<SeccompFilter>>>,
    default: std::sync::OnceLock<Profile>,
    daemon: DaemonSecurity,
}

/// dockerd's `seccomp-profile` and `no-new-privileges`: what containers get when
/// they do not say.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSecurity {
    /// `Default`: Docker's profile; `Unconfined`; or a profile's JSON.
    pub seccomp: Seccomp,
    /// As `docker info` names it: "builtin", "unconfined" or the file's path.
    pub profile_name: String,
    pub no_new_privileges: bool,
}

impl Default for DaemonSecurity {
    fn default() -> DaemonSecurity {
        DaemonSecurity {
            seccomp: Seccomp::Default,
            profile_name: "builtin".into(),
            no_new_privileges: false,
        }
    }
}

impl DaemonSecurity {
    /// `seccomp-profile`: "builtin", "unconfined" or the path of a profile in
    /// Docker's JSON format (read and checked now, as dockerd does at start).
    pub fn from_config(profile: Option<&str>, no_new_privileges: bool) -> Result<Self, String> {
        let seccomp = match profile {
            None | Some("") | Some("builtin") | Some("default") => Seccomp::Default,
            Some("unconfined") => Seccomp::Unconfined,
            Some(path) => {
                let json = std::fs::read_to_string(path)
                    .map_err(|e| format!("opening seccomp profile ({path}) failed: {e}"))?;
                Profile::parse(&json)
                    .map_err(|e| format!("loading seccomp profile ({path}) failed: {e}"))?;
                Seccomp::Custom(json)
            }
        };
        let profile_name = match &seccomp {
            Seccomp::Unconfined => "unconfined".to_string(),
            Seccomp::Custom(_) => profile.unwrap_or_default().to_string(),
            _ => "builtin".to_string(),
        };
        Ok(DaemonSecurity {
            seccomp,
            profile_name,
            no_new_privileges,
        })
    }
}

impl Filters {
    /// The filter for `profile` with the capability bounding set `caps`; None
    /// for unconfined.
    pub fn get(&self, profile: &Seccomp, caps: &[u8]) -> ApiResult<Option<Arc<SeccompFilter>>> {
        let profile = match profile {
            Seccomp::Default => &self.daemon.seccomp,
            p => p,
        };
        let text = match profile {
            Seccomp::Unconfined => return Ok(None),
            Seccomp::Default | Seccomp::Builtin => None,
            Seccomp::Custom(json) => Some(json.as_str()),
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        let key = (h.finish(), berth_runtime::caps::mask(caps));
        if let Some(f) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(f.clone()));
        }
        let parsed;
        let p = match text {
            None => self.default.get_or_init(Profile::default_profile),
            Some(json) => {
                parsed = Profile::parse(json).map_err(|e| ApiError::invalid(e.to_string()))?;
                &parsed
            }
        };
        let program = p
            .compile(caps, berth_runtime::seccomp::kernel_version())
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let mut flags = 0u32;
        for f in p.flags.iter().flatten() {
            flags |= match f.as_str() {
                "SECCOMP_FILTER_FLAG_LOG" => 2,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
                _ => 0,
            };
        }
        let filter = Arc::new(SeccompFilter {
            program: program.encode(),
            flags,
        });
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, filter.clone());
        Ok(Some(filter))
    }
}

/// Whether this kernel has seccomp filters (`Seccomp:` in /proc/self/status).
pub fn kernel_has_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false)
}

impl Filters {
    pub fn new(daemon: DaemonSecurity) -> Filters {
        Filters {
            daemon,
            ..Default::default()
        }
    }

    /// What a process of container `hc` runs under: its filter (compiled for the
    /// container's capabilities) and no_new_privileges.
    pub fn for_process(
        &self,
        hc: &HostConfig,
        caps: &[u8],
    ) -> ApiResult<(Option<SeccompFilter>, bool)> {
        let opts = parse_with(hc, self.daemon.no_new_privileges)?;
        let filter = if kernel_has_seccomp() {
            self.get(&opts.seccomp, caps)?
                .map(|f| SeccompFilter::clone(&f))
        } else {
            if !matches!(
                opts.seccomp,
                Seccomp::Unconfined | Seccomp::Default | Seccomp::Builtin
            ) {
                return Err(ApiError::invalid(
                    "seccomp profiles are not supported on this kernel (it has no seccomp)",
                ));
            }
            None
        };
        Ok((filter, opts.no_new_privileges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(opts: &[&str]) -> HostConfig {
        let mut hc = HostConfig::default();
        hc.other
            .insert("SecurityOpt".into(), serde_json::json!(opts));
        hc
    }

    #[test]
    fn security_opts_parse_as_dockerd_does() {
        let o = parse(&hc(&[])).unwrap();
        assert_eq!(o.seccomp, Seccomp::Default);
        assert!(!o.no_new_privileges);
        let o = parse(&hc(&["seccomp=unconfined", "no-new-privileges"])).unwrap();
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert!(o.no_new_privileges);
        assert!(
            !parse(&hc(&["no-new-privileges=false"]))
                .unwrap()
                .no_new_privileges
        );
        assert!(
            parse(&hc(&["no-new-privileges:true"]))
                .unwrap()
                .no_new_privileges
        );
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
        assert_eq!(
            parse(&hc(&[&format!("seccomp={json}")])).unwrap().seccomp,
            Seccomp::Custom(json.into())
        );
        for (bad, status, words) in [
            ("nonsense", 400, "invalid --security-opt 1"),
            ("no-new-privileges=maybe", 400, "invalid --security-opt 2"),
            ("seccomp={", 400, "decoding seccomp profile failed"),
            ("what=ever", 400, "invalid --security-opt 2"),
        ] {
            let e = parse(&hc(&[bad])).unwrap_err();
            assert_eq!(crate::api::errors::status(e.kind).as_u16(), status, "{bad}");
            assert!(e.message.contains(words), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn lsm_options_are_applied_or_refused_by_what_the_kernel_has() {
        // No confinement asked for: nothing to apply, on any kernel.
        assert!(parse(&hc(&["apparmor=unconfined", "label=disable"])).is_ok());
        let o = parse(&hc(&["systempaths=unconfined", "writable-cgroups=true"])).unwrap();
        assert!(o.system_paths_unconfined && o.writable_cgroups);
        let lsms = kernel_lsms();
        for (opt, lsm, name) in [
            ("apparmor=docker-default", "apparmor", "AppArmor"),
            ("label=level:s0:c100,c200", "selinux", "SELinux"),
        ] {
            let e = parse(&hc(&[opt])).unwrap_err();
            if lsms.iter().any(|l| l == lsm) {
                assert_eq!(e.kind, berth_api::ErrorKind::NotImplemented, "{opt}");
            } else {
                assert_eq!(e.kind, berth_api::ErrorKind::InvalidArgument, "{opt}");
                assert_eq!(
                    e.message,
                    format!("{name} is not enabled on this host, so --security-opt {opt} cannot be applied")
                );
            }
        }
    }

    #[test]
    fn filters_are_compiled_once_per_profile_and_capabilities() {
        let f = Filters::default();
        let caps = berth_runtime::caps::docker_default();
        let a = f.get(&Seccomp::Default, &caps).unwrap().unwrap();
        let b = f.get(&Seccomp::Default, &caps).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = f.get(&Seccomp::Default, &[]).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(f.get(&Seccomp::Unconfined, &caps).unwrap().is_none());
    }
}
