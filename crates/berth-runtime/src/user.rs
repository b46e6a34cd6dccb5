//! Resolution of Docker's `--user` (`name`, `uid`, `name:group`, `uid:gid`) against a
//! container image's /etc/passwd and /etc/group, the way runc's libcontainer/user does.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || l.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

/// Resolves `spec` (empty means root). `passwd` and `group` are the files' contents,
/// empty when the image has none: numeric ids then still work, names do not.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = passwd_entries(passwd)
        .find(|e| e.name == user_part || user_part.parse::<u32>().ok() == Some(e.uid));
    let (uid, mut gid, home, name) = match (&entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), None),
        (None, Err(_)) => return Err(UserError::NoUser(user_part.to_string())),
    };

    let mut additional_gids = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            gid = match group_entries(group).find(|e| e.name == g) {
                Some(e) => e.gid,
                None => g.parse().map_err(|_| UserError::NoGroup(g.to_string()))?,
            };
        }
        _ => {
            // Supplementary groups come from the group file only when the primary
            // group was not given explicitly (runc's GetExecUser).
            if let Some(name) = name {
                for e in group_entries(group) {
                    if e.members.contains(&name)
                        && e.gid != gid
                        && !additional_gids.contains(&e.gid)
                    {
                        additional_gids.push(e.gid);
                    }
                }
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// A group given by name (looked up in `group`, the image's /etc/group) or by
/// number (`--group-add`).
pub fn group_id(name: &str, group: &str) -> Result<u32, UserError> {
    match group_entries(group).find(|e| e.name == name) {
        Some(e) => Ok(e.gid),
        None => name
            .parse()
            .map_err(|_| UserError::NoGroup(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:Bob:/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:bob\nbob:x:1000:\naudio:x:29:bob,alice\n";

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        let u = resolve("bob", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![10, 29]);
        assert_eq!(u.home, "/home/bob");
    }

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(group_id("audio", GROUP), Ok(29));
        assert_eq!(group_id("4242", GROUP), Ok(4242));
        assert_eq!(
            group_id("nope", GROUP),
            Err(UserError::NoGroup("nope".into()))
        );
    }

    #[test]
    fn numeric_pair_needs_no_files() {
        let u = resolve("1000:10", "", "").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        assert!(u.additional_gids.is_empty());
    }

    #[test]
    fn empty_is_root_and_unknown_names_fail() {
        assert_eq!(resolve("", PASSWD, GROUP).unwrap().uid, 0);
        assert_eq!(
            resolve("nobody", PASSWD, GROUP),
            Err(UserError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve("bob:nogroup", PASSWD, GROUP),
            Err(UserError::NoGroup("nogroup".into()))
        );
    }
}
