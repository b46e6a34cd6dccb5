//! A managed plugin as Docker describes it: the plugin's own configuration (the
//! `application/vnd.docker.plugin.v1+json` blob of its image), the settings a
//! user changed with `docker plugin set`, and the privileges the configuration
//! asks for, which the user accepts at install.

use serde::{Deserialize, Serialize};

/// `Config` of a plugin: what its author declared.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    #[serde(rename = "Args")]
    pub args: Args,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Documentation")]
    pub documentation: String,
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Env")]
    pub env: Vec<Env>,
    #[serde(rename = "Interface")]
    pub interface: Interface,
    #[serde(rename = "IpcHost")]
    pub ipc_host: bool,
    #[serde(rename = "Linux")]
    pub linux: Linux,
    #[serde(rename = "Mounts")]
    pub mounts: Vec<Mount>,
    #[serde(rename = "Network")]
    pub network: Network,
    #[serde(rename = "PidHost")]
    pub pid_host: bool,
    #[serde(rename = "PropagatedMount")]
    pub propagated_mount: String,
    #[serde(rename = "User", skip_serializing_if = "User::is_root")]
    pub user: User,
    #[serde(rename = "WorkDir")]
    pub work_dir: String,
    #[serde(rename = "rootfs", skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Args {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Settable")]
    pub settable: Vec<String>,
    #[serde(rename = "Value")]
    pub value: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Env {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Settable")]
    pub settable: Vec<String>,
    #[serde(rename = "Value")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Interface {
    #[serde(rename = "ProtocolScheme", skip_serializing_if = "String::is_empty")]
    pub protocol_scheme: String,
    #[serde(rename = "Socket")]
    pub socket: String,
    /// `docker.volumedriver/1.0`, `docker.authz/1.0` ...
    #[serde(rename = "Types")]
    pub types: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Linux {
    #[serde(rename = "AllowAllDevices")]
    pub allow_all_devices: bool,
    #[serde(rename = "Capabilities")]
    pub capabilities: Vec<String>,
    #[serde(rename = "Devices")]
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Mount {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Options")]
    pub options: Vec<String>,
    #[serde(rename = "Settable")]
    pub settable: Vec<String>,
    #[serde(rename = "Source")]
    pub source: Option<String>,
    #[serde(rename = "Type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Device {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Path")]
    pub path: Option<String>,
    #[serde(rename = "Settable")]
    pub settable: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Network {
    #[serde(rename = "Type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct User {
    #[serde(rename = "UID", skip_serializing_if = "is_zero")]
    pub uid: u32,
    #[serde(rename = "GID", skip_serializing_if = "is_zero")]
    pub gid: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl User {
    fn is_root(&self) -> bool {
        self.uid == 0 && self.gid == 0
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RootFs {
    pub diff_ids: Vec<String>,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// What `docker plugin set` changed, over the configuration's values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    #[serde(rename = "Args")]
    pub args: Vec<String>,
    #[serde(rename = "Devices")]
    pub devices: Vec<Device>,
    #[serde(rename = "Env")]
    pub env: Vec<String>,
    #[serde(rename = "Mounts")]
    pub mounts: Vec<Mount>,
}

/// One privilege a plugin asks for, as `GET /plugins/privileges` lists it and
/// the client sends back the ones it accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Privilege {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Value")]
    pub value: Vec<String>,
}

impl Config {
    /// The capability of an interface type, `volumedriver` for
    /// `docker.volumedriver/1.0`; only Docker's prefix counts.
    pub fn capabilities(&self) -> impl Iterator<Item = &str> {
        self.interface.types.iter().filter_map(|t| {
            let (prefix, rest) = t.split_once('.')?;
            let cap = rest.split_once('/').map_or(rest, |(c, _)| c);
            (prefix == "docker").then_some(cap)
        })
    }

    pub fn provides(&self, capability: &str) -> bool {
        let want = capability.to_ascii_lowercase();
        self.capabilities().any(|c| c == want)
    }

    /// Checks what berth relies on before a plugin is stored: a socket to reach
    /// it by, in the socket directory; a program to run; absolute paths.
    pub fn validate(&self) -> Result<(), String> {
        let sock = &self.interface.socket;
        if sock.is_empty() || sock.contains('/') || sock == "." || sock == ".." {
            return Err(format!(
                "plugin config: Interface.Socket must be a file name, not {sock:?}"
            ));
        }
        if self.interface.types.is_empty() {
            return Err("plugin config: Interface.Types is empty".into());
        }
        if self.entrypoint.is_empty() {
            return Err("plugin config: Entrypoint is empty".into());
        }
        for m in &self.mounts {
            if !m.destination.starts_with('/') {
                return Err(format!(
                    "plugin config: mount destination {:?} is not an absolute path",
                    m.destination
                ));
            }
        }
        if !self.propagated_mount.is_empty() && !self.propagated_mount.starts_with('/') {
            return Err(format!(
                "plugin config: PropagatedMount {:?} is not an absolute path",
                self.propagated_mount
            ));
        }
        if !self.network.kind.is_empty()
            && !["host", "none", "null", "bridge"].contains(&self.network.kind.as_str())
        {
            return Err(format!(
                "plugin config: network type {:?} is not supported",
                self.network.kind
            ));
        }
        for c in &self.linux.capabilities {
            if berth_runtime::caps::from_name(c).is_none() {
                return Err(format!("plugin config: unknown capability {c:?}"));
            }
        }
        Ok(())
    }

    /// What the plugin asks of the host, in moby's order and words.
    pub fn privileges(&self) -> Vec<Privilege> {
        let p = |name: &str, description: &str, value: Vec<String>| Privilege {
            name: name.into(),
            description: description.into(),
            value,
        };
        let mut out = Vec::new();
        let net = self.network.kind.as_str();
        if !["", "null", "bridge"].contains(&net) {
            out.push(p(
                "network",
                "permissions to access a network",
                vec![net.into()],
            ));
        }
        if self.ipc_host {
            out.push(p(
                "host ipc namespace",
                "allow access to host ipc namespace",
                vec!["true".into()],
            ));
        }
        if self.pid_host {
            out.push(p(
                "host pid namespace",
                "allow access to host pid namespace",
                vec!["true".into()],
            ));
        }
        for m in &self.mounts {
            if let Some(s) = &m.source {
                out.push(p("mount", "host path to mount", vec![s.clone()]));
            }
        }
        for d in &self.linux.devices {
            if let Some(path) = &d.path {
                out.push(p("device", "host device to access", vec![path.clone()]));
            }
        }
        if self.linux.allow_all_devices {
            out.push(p(
                "allow-all-devices",
                "allow 'rwm' access to all devices",
                vec!["true".into()],
            ));
        }
        if !self.linux.capabilities.is_empty() {
            out.push(p(
                "capabilities",
                "list of additional capabilities required",
                self.linux.capabilities.clone(),
            ));
        }
        out
    }

    /// The settings a new plugin starts with: the configuration's values.
    pub fn initial_settings(&self) -> Settings {
        Settings {
            args: self.args.value.clone(),
            devices: self.linux.devices.clone(),
            env: self
                .env
                .iter()
                .filter_map(|e| e.value.as_ref().map(|v| format!("{}={v}", e.name)))
                .collect(),
            mounts: self.mounts.clone(),
        }
    }
}

/// The privileges the client accepted must be exactly those the plugin asks for
/// (moby's rule), in any order.
pub fn check_privileges(required: &[Privilege], accepted: &[Privilege]) -> Result<(), String> {
    let key = |p: &Privilege| {
        let mut v = p.value.clone();
        v.sort();
        (p.name.clone(), v)
    };
    let mut a: Vec<_> = required.iter().map(key).collect();
    let mut b: Vec<_> = accepted.iter().map(key).collect();
    a.sort();
    b.sort();
    if a != b {
        return Err("incorrect privileges".into());
    }
    Ok(())
}

/// One `docker plugin set` argument: `name[.field][=value]`.
struct Settable {
    name: String,
    field: String,
    value: String,
}

fn parse_settable(arg: &str) -> Result<Settable, String> {
    let (name, value) = match arg.find('=') {
        Some(0) => return Err("invalid format, must be <name>[.<field>][=<value>]".into()),
        Some(i) => (&arg[..i], &arg[i + 1..]),
        None => (arg, ""),
    };
    let (name, field) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    Ok(Settable {
        name: name.into(),
        field: field.into(),
        value: value.into(),
    })
}

impl Settable {
    fn pretty(&self) -> String {
        if self.field.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.name, self.field)
        }
    }

    /// Whether the field named (or the only settable one) may be set.
    fn allowed(&mut self, fields: &[&str], settable: &[String]) -> Result<bool, String> {
        if self.field.is_empty() {
            match settable.len() {
                1 => self.field = settable[0].clone(),
                n if n > 1 => {
                    return Err("multiple fields are settable, one must be specified".into())
                }
                _ => {}
            }
        }
        Ok(fields.contains(&self.field.as_str()) && settable.contains(&self.field))
    }
}

impl Settings {
    /// Applies `docker plugin set` arguments against the plugin's configuration;
    /// nothing changes unless every argument is good.
    pub fn apply(&mut self, config: &Config, args: &[String]) -> Result<(), String> {
        let mut next = self.clone();
        for arg in args {
            let mut s = parse_settable(arg)?;
            let not_settable = |s: &Settable| format!("{:?} is not settable", s.pretty());
            if let Some(e) = config.env.iter().find(|e| e.name == s.name) {
                if !s.allowed(&["value"], &e.settable)? {
                    return Err(not_settable(&s));
                }
                let entry = format!("{}={}", s.name, s.value);
                match next
                    .env
                    .iter_mut()
                    .find(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) == s.name)
                {
                    Some(x) => *x = entry,
                    None => next.env.push(entry),
                }
            } else if let Some(m) = config.mounts.iter().find(|m| m.name == s.name) {
                if !s.allowed(&["source"], &m.settable)? {
                    return Err(not_settable(&s));
                }
                let Some(mine) = next.mounts.iter_mut().find(|x| x.name == s.name) else {
                    return Err("plugin config has no mount source".into());
                };
                mine.source = Some(s.value.clone());
            } else if let Some(d) = config.linux.devices.iter().find(|d| d.name == s.name) {
                if !s.allowed(&["path"], &d.settable)? {
                    return Err(not_settable(&s));
                }
                let Some(mine) = next.devices.iter_mut().find(|x| x.name == s.name) else {
                    return Err("plugin config has no device path".into());
                };
                mine.path = Some(s.value.clone());
            } else if !config.args.name.is_empty() && config.args.name == s.name {
                if !s.allowed(&["value"], &config.args.settable)? {
                    return Err(not_settable(&s));
                }
                next.args = s.value.split(' ').map(String::from).collect();
            } else {
                return Err(format!(
                    "setting {:?} not found in the plugin configuration",
                    s.name
                ));
            }
        }
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        serde_json::from_value(serde_json::json!({
            "Entrypoint": ["/plugin"],
            "Interface": {"Socket": "p.sock", "Types": ["docker.volumedriver/1.0"]},
            "Network": {"Type": "host"},
            "Env": [{"Name": "DEBUG", "Settable": ["value"], "Value": "0"},
                    {"Name": "FIXED", "Value": "1"}],
            "Mounts": [{"Name": "state", "Source": "/var/lib/x", "Destination": "/state",
                        "Type": "bind", "Options": ["rbind"], "Settable": ["source"]}],
            "Args": {"Name": "args", "Settable": ["value"], "Value": ["-v"]},
            "Linux": {"Capabilities": ["CAP_SYS_ADMIN"]}
        }))
        .unwrap()
    }

    #[test]
    fn privileges_are_mobys() {
        let p = config().privileges();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["network", "mount", "capabilities"]);
        assert_eq!(p[1].value, ["/var/lib/x"]);
        assert!(check_privileges(&p, &p).is_ok());
        assert_eq!(
            check_privileges(&p, &p[..2]).unwrap_err(),
            "incorrect privileges"
        );
    }

    #[test]
    fn settings_follow_the_settable_fields() {
        let c = config();
        let mut s = c.initial_settings();
        assert_eq!(s.env, ["DEBUG=0", "FIXED=1"]);
        s.apply(
            &c,
            &[
                "DEBUG=1".into(),
                "state.source=/srv".into(),
                "args=-a -b".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.env, ["DEBUG=1", "FIXED=1"]);
        assert_eq!(s.mounts[0].source.as_deref(), Some("/srv"));
        assert_eq!(s.args, ["-a", "-b"]);
        let before = s.clone();
        assert_eq!(
            s.apply(&c, &["DEBUG=2".into(), "FIXED=2".into()])
                .unwrap_err(),
            "\"FIXED\" is not settable"
        );
        assert_eq!(s, before, "a refused set changes nothing");
        assert_eq!(
            s.apply(&c, &["nope=1".into()]).unwrap_err(),
            "setting \"nope\" not found in the plugin configuration"
        );
        assert!(s.apply(&c, &["=x".into()]).is_err());
    }

    #[test]
    fn capabilities_come_from_dockers_types() {
        let c = config();
        assert!(c.provides("VolumeDriver"));
        assert!(!c.provides("authz"));
        assert!(c.validate().is_ok());
    }
}
