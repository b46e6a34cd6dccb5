//! `--userns-remap`: which host IDs a container's root and users become, read
//! from /etc/subuid and /etc/subgid as dockerd reads them. `default` stands for
//! the `dockremap` user, created with its ranges when missing, as dockerd does.

use berth_runtime::spec::{IdMap, IdRange};
use std::process::Command;

/// A resolved remapping: the user and group named, and their ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Remap {
    pub user: String,
    pub group: String,
    pub map: IdMap,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Spec(String),
    #[error("Error during {0:?} user creation: {1}")]
    Create(String, String),
    #[error("error creating ID mappings: No subuid ranges found for user {0:?}")]
    NoSubuid(String),
    #[error("error creating ID mappings: No subgid ranges found for group {0:?}")]
    NoSubgid(String),
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
}

const DEFAULT_USER: &str = "dockremap";
const RANGE_START: u64 = 100_000;
const RANGE_LEN: u64 = 65_536;

/// A system file's text; empty when it does not exist (no /etc/subuid yet).
fn read_optional(file: &str) -> Result<String, Error> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::Read(file.into(), e)),
    }
}

/// A passwd or group entry: name and ID.
fn entries(file: &str) -> Result<Vec<(String, u32)>, Error> {
    let text = read_optional(file)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            f.next()?;
            let id = f.next()?.parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect())
}

fn by_name(file: &str, name: &str) -> Result<Option<(String, u32)>, Error> {
    Ok(entries(file)?.into_iter().find(|(n, _)| n == name))
}

fn by_id(file: &str, id: u32) -> Result<Option<(String, u32)>, Error> {
    Ok(entries(file)?.into_iter().find(|(_, i)| *i == id))
}

/// dockerd's parseRemappedRoot: `user[:group]`, names or IDs, `default` for
/// dockremap (created when missing if `create`). Returns the user's and group's
/// names.
fn parse(spec: &str, create: bool) -> Result<(String, String), Error> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() > 2 || parts[0].is_empty() {
        return Err(Error::Spec(format!(
            "Invalid user/group specification in --userns-remap: {spec:?}"
        )));
    }
    let mut group = None;
    let user = if let Ok(uid) = parts[0].parse::<u32>() {
        let (name, _) = by_id("/etc/passwd", uid)?
            .ok_or_else(|| Error::Spec(format!("Uid {uid} has no entry in /etc/passwd")))?;
        if parts.len() == 1 {
            let (g, _) = by_id("/etc/group", uid)?
                .ok_or_else(|| Error::Spec(format!("Gid {uid} has no entry in /etc/group")))?;
            group = Some(g);
        }
        name
    } else {
        let lookup = if parts[0] == "default" {
            DEFAULT_USER
        } else {
            parts[0]
        };
        match by_name("/etc/passwd", lookup)? {
            Some((name, _)) => {
                if parts.len() == 1 {
                    let (g, _) = by_name("/etc/group", lookup)?.ok_or_else(|| {
                        Error::Spec(format!("Error during gid lookup for {lookup:?}"))
                    })?;
                    group = Some(g);
                }
                name
            }
            None if parts[0] == "default" => {
                if create {
                    add_user(DEFAULT_USER)?;
                }
                return Ok((DEFAULT_USER.into(), DEFAULT_USER.into()));
            }
            None => {
                return Err(Error::Spec(format!(
                    "Error during uid lookup for {lookup:?}: no such user"
                )))
            }
        }
    };
    if let Some(g) = parts.get(1) {
        group = Some(if let Ok(gid) = g.parse::<u32>() {
            by_id("/etc/group", gid)?
                .ok_or_else(|| Error::Spec(format!("Gid {gid} has no entry in /etc/group")))?
                .0
        } else {
            by_name("/etc/group", g)?
                .ok_or_else(|| Error::Spec(format!("Error during groupname lookup for {g:?}")))?
                .0
        });
    }
    Ok((user, group.unwrap_or_default()))
}

/// Creates the system user `name` with its own group and, where it has none,
/// 65536 subordinate IDs after every range already given out (dockerd's
/// AddNamespaceRangesUser). Another daemon doing the same at once is fine: the
/// user it made is used.
fn add_user(name: &str) -> Result<(), Error> {
    let fail = |e: String| Error::Create(name.into(), e);
    let out = Command::new("useradd")
        .args(["-r", "-U", "-s", "/bin/false", name])
        .output()
        .map_err(|e| fail(format!("running useradd: {e}")))?;
    if !out.status.success() && by_name("/etc/passwd", name)?.is_none() {
        return Err(fail(format!(
            "failed to add user: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    for (file, flag) in [("/etc/subuid", "-v"), ("/etc/subgid", "-w")] {
        if !ranges(file, name, None)?.is_empty() {
            continue;
        }
        let start = next_start(file)?;
        let range = format!("{start}-{}", start + RANGE_LEN - 1);
        let out = Command::new("usermod")
            .args([flag, &range, name])
            .output()
            .map_err(|e| fail(format!("running usermod: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "unable to add subordinate range {range}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// The first start at or after 100000 that overlaps no range of `file`.
fn next_start(file: &str) -> Result<u64, Error> {
    let mut all: Vec<(u64, u64)> = read_ranges(file)?
        .into_iter()
        .map(|(_, s, c)| (s, c))
        .collect();
    all.sort();
    let mut start = RANGE_START;
    for (s, c) in all {
        if start < s + c && s < start + RANGE_LEN {
            start = s + c;
        }
    }
    Ok(start)
}

fn read_ranges(file: &str) -> Result<Vec<(String, u64, u64)>, Error> {
    let text = read_optional(file)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let who = f.next()?.to_string();
            let start = f.next()?.parse().ok()?;
            let count = f.next()?.parse().ok()?;
            Some((who, start, count))
        })
        .collect())
}

/// `name`'s ranges of `file` (entries naming it or its ID), in the file's order.
fn ranges(file: &str, name: &str, id: Option<u32>) -> Result<Vec<(u64, u64)>, Error> {
    Ok(read_ranges(file)?
        .into_iter()
        .filter(|(who, _, _)| who == name || id.is_some_and(|i| who == &i.to_string()))
        .map(|(_, s, c)| (s, c))
        .collect())
}

/// Container IDs from 0 up, over the host ranges in order.
fn id_ranges(host: &[(u64, u64)]) -> Vec<IdRange> {
    let max = u64::from(u32::MAX);
    let mut next = 0u64;
    let mut out = Vec::new();
    for &(start, count) in host {
        if count == 0 || start + count > max || next + count > max {
            continue;
        }
        out.push(IdRange {
            container: next as u32,
            host: start as u32,
            size: count as u32,
        });
        next += count;
    }
    out
}

/// Subordinate ID ranges: (start, count).
pub type Ranges = Vec<(u64, u64)>;

/// The subordinate ID ranges (start, count) of the user with ID `uid` and of
/// the group with ID `gid`, from /etc/subuid and /etc/subgid (entries naming
/// them or their IDs): what a rootless berthd maps besides its own IDs.
pub fn subordinate(uid: u32, gid: u32) -> Result<(Ranges, Ranges), Error> {
    let user = by_id("/etc/passwd", uid)?.map_or_else(|| uid.to_string(), |(n, _)| n);
    let group = by_id("/etc/group", gid)?.map_or_else(|| gid.to_string(), |(n, _)| n);
    let uids = ranges("/etc/subuid", &user, Some(uid))?;
    if uids.is_empty() {
        return Err(Error::NoSubuid(user));
    }
    let mut gids = ranges("/etc/subgid", &group, Some(gid))?;
    if gids.is_empty() {
        // newgidmap takes the user's ranges (subgid entries name users).
        gids = ranges("/etc/subgid", &user, Some(uid))?;
    }
    if gids.is_empty() {
        return Err(Error::NoSubgid(user));
    }
    Ok((uids, gids))
}

/// Checks `--userns-remap` without creating anything (`berthd --validate`).
pub fn check(spec: &str) -> Result<(), Error> {
    parse(spec, false).map(|_| ())
}

/// Resolves `--userns-remap`; None when it names root (dockerd: root cannot be
/// remapped with itself, user namespaces stay off).
pub fn setup(spec: &str) -> Result<Option<Remap>, Error> {
    let (user, group) = parse(spec, true)?;
    if user == "root" {
        tracing::warn!(
            "User namespaces: root cannot be remapped with itself; user namespaces are OFF"
        );
        return Ok(None);
    }
    let uid = by_name("/etc/passwd", &user)?.map(|(_, id)| id);
    let gid = by_name("/etc/group", &group)?.map(|(_, id)| id);
    let uids = id_ranges(&ranges("/etc/subuid", &user, uid)?);
    if uids.is_empty() {
        return Err(Error::NoSubuid(user));
    }
    let gids = id_ranges(&ranges("/etc/subgid", &group, gid)?);
    if gids.is_empty() {
        return Err(Error::NoSubgid(group));
    }
    tracing::info!("User namespaces: ID ranges will be mapped to subuid/subgid ranges of: {user}");
    Ok(Some(Remap {
        user,
        group,
        map: IdMap { uids, gids },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_run_on_over_the_host_ranges() {
        let r = id_ranges(&[(100_000, 65_536), (300_000, 10)]);
        assert_eq!(
            r,
            vec![
                IdRange {
                    container: 0,
                    host: 100_000,
                    size: 65_536
                },
                IdRange {
                    container: 65_536,
                    host: 300_000,
                    size: 10
                },
            ]
        );
        assert_eq!(IdMap::to_host(&r, 65_537), Some(300_001));
        assert_eq!(IdMap::to_host(&r, 65_546), None);
        assert_eq!(IdMap::proc_text(&r), "0 100000 65536\n65536 300000 10\n");
    }

    #[test]
    fn bad_specifications_are_refused_in_dockerds_words() {
        let e = check("a:b:c").unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid user/group specification in --userns-remap: \"a:b:c\""
        );
        let e = check("no-such-user-berth").unwrap_err().to_string();
        assert!(
            e.starts_with("Error during uid lookup for \"no-such-user-berth\""),
            "{e}"
        );
    }
}
