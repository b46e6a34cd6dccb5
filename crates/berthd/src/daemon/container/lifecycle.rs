//! The rest of a container's lifecycle: pause, unpause, rename, top, prune.

use crate::daemon::container::record::Status;
use crate::daemon::container::{Containers, Error};
use crate::daemon::ids;
use crate::error::{ApiError, ApiResult};
use berth_api::ContainerUpdateRequest;
use std::collections::HashMap;

impl Containers {
    pub fn pause(&self, key: &str, pause: bool) -> ApiResult<()> {
        let c = self.get(key)?;
        if self.hierarchy.is_none() {
            return Err(ApiError::conflict(
                "pause needs the freezer cgroup: this rootless berthd runs without cgroups (no delegated cgroup v2 subtree)",
            ));
        }
        {
            let r = c.rec();
            if r.state.status != Status::Running {
                return Err(ApiError::conflict(format!(
                    "Container {} is not running",
                    c.id
                )));
            }
            match (pause, r.state.paused) {
                (true, true) => {
                    return Err(ApiError::conflict(format!(
                        "Container {} is already paused",
                        c.id
                    )))
                }
                (false, false) => {
                    return Err(ApiError::conflict(format!(
                        "Container {} is not paused",
                        c.id
                    )))
                }
                _ => {}
            }
        }
        self.hierarchy
            .freeze(&self.cgroup_path(&c.rec()), pause)
            .map_err(|source| Error::Freeze {
                id: c.id.clone(),
                pause,
                source,
            })?;
        c.rec().state.paused = pause;
        self.emit(&c, if pause { "pause" } else { "unpause" }, &[]);
        self.persist(&c)
    }

    /// `docker update`: memory, pids limit, CPU and restart policy; live on a
    /// running container. Other resources are refused, as at create.
    pub fn update(&self, key: &str, req: &ContainerUpdateRequest) -> ApiResult<Vec<String>> {
        let c = self.get(key)?;
        const RT: [&str; 2] = ["CpuRealtimePeriod", "CpuRealtimeRuntime"];
        for (k, v) in req.other.iter().filter(|(k, _)| !RT.contains(&k.as_str())) {
            let zero = v.is_null()
                || v.as_f64() == Some(0.0)
                || v.as_bool() == Some(false)
                || v.as_str() == Some("")
                || v.as_array().is_some_and(|a| a.is_empty())
                || v.as_object().is_some_and(|o| o.is_empty())
                || (k == "MemorySwappiness" && v.as_i64() == Some(-1));
            if !zero {
                return Err(ApiError::not_implemented(format!(
                    "berth does not support updating {k} yet"
                )));
            }
        }
        let int = |v: Option<i64>| v.unwrap_or(0);
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let memory = req.memory.filter(|m| *m != 0);
        let pids = req.pids_limit.filter(|p| *p != 0);
        let policy = req.restart_policy.clone().filter(|p| !p.name.is_empty());
        let mut hc = c.rec().host_config.clone();
        if let Some(p) = &policy {
            hc.restart_policy = p.clone();
            crate::daemon::container::restart::validate(&hc)?;
        }
        let cpu_given = [req.nano_cpus, req.cpu_shares, req.cpu_quota, req.cpu_period]
            .iter()
            .any(|v| int(*v) != 0)
            || !text(&req.cpuset_cpus).is_empty();
        if cpu_given {
            if int(req.nano_cpus) != 0 {
                hc.nano_cpus = int(req.nano_cpus);
                hc.cpu_quota = 0;
                hc.cpu_period = 0;
            }
            if int(req.cpu_shares) != 0 {
                hc.cpu_shares = int(req.cpu_shares);
            }
            if int(req.cpu_quota) != 0 || int(req.cpu_period) != 0 {
                hc.nano_cpus = 0;
                hc.cpu_quota = int(req.cpu_quota);
                hc.cpu_period = int(req.cpu_period);
            }
            if !text(&req.cpuset_cpus).is_empty() {
                hc.cpuset_cpus = text(&req.cpuset_cpus);
            }
        }
        // The real-time budget (`--cpu-rt-period`, `--cpu-rt-runtime`).
        let mut rt_given = false;
        for k in RT {
            if let Some(v) = req
                .other
                .get(k)
                .filter(|v| v.as_i64().is_some_and(|n| n != 0))
            {
                hc.other.insert(k.into(), v.clone());
                rt_given = true;
            }
        }
        let mems_given = !text(&req.cpuset_mems).is_empty();
        if mems_given {
            hc.other
                .insert("CpusetMems".into(), text(&req.cpuset_mems).into());
        }
        let cpu_given = cpu_given || mems_given || rt_given;
        // The new memory settings, checked as a whole with Docker's rules.
        if let Some(m) = memory {
            hc.memory = m;
        }
        let reservation_given = int(req.memory_reservation) != 0;
        // -1 (unlimited swap) is a value given, as in Docker.
        let swap_given = int(req.memory_swap) != 0;
        let blkio_given = int(req.blkio_weight) != 0;
        for (k, v, given) in [
            (
                "MemoryReservation",
                req.memory_reservation,
                reservation_given,
            ),
            ("MemorySwap", req.memory_swap, swap_given),
            ("BlkioWeight", req.blkio_weight, blkio_given),
        ] {
            if given {
                hc.other.insert(k.into(), int(v).into());
            }
        }
        let (all, _) =
            crate::daemon::container::limits::memory(&hc, self.hierarchy.has_swap_limit(), true)?;
        if blkio_given && !self.hierarchy.has_blkio_weight() {
            return Err(ApiError::invalid(
                "Your kernel does not support Block I/O weight or the cgroup is not mounted",
            ));
        }
        if swap_given && !self.hierarchy.has_swap_limit() {
            return Err(ApiError::invalid(
                "Your kernel does not support swap limit capabilities or the cgroup is not mounted",
            ));
        }
        let limits = berth_runtime::cgroups::Limits {
            memory,
            reservation: all.reservation.filter(|_| reservation_given),
            swap: all.swap.filter(|_| swap_given || memory.is_some()),
            pids,
            blkio_weight: all.blkio_weight.filter(|_| blkio_given),
        };
        let cpu = crate::daemon::container::limits::cpu(&hc)?;
        if rt_given {
            self.check_rt(&cpu)?;
        }
        if c.is_running() && cpu_given {
            self.hierarchy
                .set_cpu(&self.cgroup_path(&c.rec()), &cpu)
                .map_err(|source| Error::Update {
                    id: c.id.clone(),
                    source,
                })?;
        }
        if c.is_running() {
            self.hierarchy
                .set_limits(&self.cgroup_path(&c.rec()), &limits)
                .map_err(|source| Error::Update {
                    id: c.id.clone(),
                    source,
                })?;
        }
        if let Some(p) = pids {
            hc.pids_limit = Some(p);
        }
        c.rec().host_config = hc;
        self.persist(&c)?;
        self.emit(&c, "update", &[]);
        Ok(vec![])
    }

    pub fn rename(&self, key: &str, new: &str) -> ApiResult<()> {
        let c = self.get(key)?;
        if new.is_empty() || !ids::valid(new) {
            return Err(ApiError::invalid(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let new = new.trim_start_matches('/').to_string();
        let old = c.name();
        if old == new {
            return Err(ApiError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        if let Some(other) = self.name_taken(&new) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{new}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        c.rec().name = new;
        if let Err(e) = self.persist(&c) {
            c.rec().name = old;
            return Err(e);
        }
        self.emit(&c, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `docker top`: the host's `ps` with the client's arguments, keeping the rows
    /// of the container's processes (dockerd's approach).
    pub async fn top(
        &self,
        key: &str,
        ps_args: &str,
    ) -> ApiResult<(Vec<String>, Vec<Vec<String>>)> {
        let c = self.get(key)?;
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let pids = if self.hierarchy.is_none() {
            // No cgroup to ask (rootless): the processes of its PID namespace.
            pid_namespace_members(c.rec().state.pid as i32)
        } else {
            self.hierarchy
                .pids(&self.cgroup_path(&c.rec()))
                .map_err(|source| Error::Processes {
                    id: c.id.clone(),
                    source,
                })?
        };
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|source| Error::Ps { source })?;
        if !out.status.success() {
            return Err(ApiError::invalid(format!(
                "Error running ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// `docker container prune`: removes every container that is not running;
    /// returns their ids and the bytes their writable layers held.
    pub fn prune(&self, filters: &HashMap<String, Vec<String>>) -> ApiResult<(Vec<String>, u64)> {
        for k in filters.keys() {
            if k != "label" {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let labels = filters.get("label").cloned().unwrap_or_default();
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for c in self.all() {
            let (stopped, have) = {
                let r = c.rec();
                (
                    r.state.status != Status::Running,
                    r.config.labels.clone().unwrap_or_default(),
                )
            };
            let matches = labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => have.get(k).map(String::as_str) == Some(v),
                None => have.contains_key(l),
            });
            if stopped && matches {
                reclaimed += crate::daemon::paths::dir_size(&self.paths.writable(&c.id));
                self.remove_stopped(&c, false)?;
                deleted.push(c.id.clone());
            }
        }
        Ok((deleted, reclaimed))
    }
}

/// Keeps the rows of `ps` output whose PID column is one of `pids`.
fn parse_ps(text: &str, pids: &[i32]) -> ApiResult<(Vec<String>, Vec<Vec<String>>)> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::invalid("Couldn't find PID field in ps output"))?;
    let mut rows = Vec::new();
    for line in lines {
        // The last column (the command) may contain spaces.
        let mut fields: Vec<String> = line
            .split_whitespace()
            .take(titles.len() - 1)
            .map(String::from)
            .collect();
        fields.push(
            line.split_whitespace()
                .skip(titles.len() - 1)
                .collect::<Vec<_>>()
                .join(" "),
        );
        let pid: Option<i32> = fields.get(pid_col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            rows.push(fields);
        }
    }
    Ok((titles, rows))
}

impl Containers {
    /// `DELETE /containers/{parent}/{alias}?link=1` (`docker rm --link`): the
    /// parent forgets the legacy link named `alias` (from its next start on).
    pub fn remove_link(&self, name: &str) -> ApiResult<()> {
        let full = format!("/{}", name.trim_start_matches('/'));
        let Some((parent, alias)) = full[1..].rsplit_once('/') else {
            return Err(ApiError::conflict(
                "Conflict, cannot remove the default link name of the container",
            ));
        };
        let c = self.get(parent).map_err(|_| {
            ApiError::not_found(format!("Cannot get parent /{parent} for link name {full}"))
        })?;
        {
            let mut r = c.rec();
            let links =
                crate::daemon::container::endpoint::str_list(r.host_config.other.get("Links"));
            let kept: Vec<String> = links
                .iter()
                .filter(|l| crate::daemon::container::record::parse_link(l).1 != alias)
                .cloned()
                .collect();
            if kept.len() == links.len() {
                return Err(ApiError::not_found(format!("Could not find link {full}")));
            }
            r.host_config
                .other
                .insert("Links".into(), serde_json::json!(kept));
        }
        self.persist(&c)
    }
}

/// The processes in the PID namespace of process `pid` (its container's, when
/// there is no cgroup to list them).
fn pid_namespace_members(pid: i32) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let ns = |p: &str| {
        std::fs::metadata(format!("/proc/{p}/ns/pid"))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let Some(want) = ns(&pid.to_string()) else {
        return Vec::new();
    };
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ns(&p.to_string()) == Some(want))
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::parse_ps;

    #[test]
    fn keeps_the_containers_rows() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                   root           1       0  0 10:00 ?        00:00:01 /sbin/init\n\
                   root        4242    4200  0 10:01 ?        00:00:00 sleep 1000 now\n";
        let (titles, rows) = parse_ps(out, &[4242]).unwrap();
        assert_eq!(titles.len(), 8);
        assert_eq!(
            rows,
            vec![vec![
                "root",
                "4242",
                "4200",
                "0",
                "10:01",
                "?",
                "00:00:00",
                "sleep 1000 now"
            ]]
        );
        assert!(parse_ps("NOPID\n", &[]).is_err());
    }
}
