//! The parts of a [`Plan`] every process has (what to run, as whom, with what
//! limits), an exec's plan, the namespaces joined, and the names of the steps.

use super::{cstr, path_cstr, step, HostFacts, Op, Plan, PlanError};
use crate::spec::{Process, DEFAULT_PATH};
use std::ffi::CString;
use std::os::fd::RawFd;

impl Plan {
    /// A process that joins a running container (`docker exec`): the child enters
    /// the namespaces given as open fds (the caller has already entered the PID
    /// namespace, which applies to its children), then becomes `p`.
    pub fn build_exec(
        p: &Process,
        namespaces: &[(RawFd, libc::c_int)],
        host: HostFacts,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan::for_process(p, host)?;
        // The mount namespace after the others (they are entered through fds, not
        // paths, so that order only keeps /dev/ptmx the container's), and a user
        // namespace last: entered first, it would leave no capability over a
        // namespace it does not own (berthd's network namespace).
        let mut ns: Vec<(RawFd, libc::c_int)> = namespaces.to_vec();
        ns.sort_by_key(|(_, t)| match *t {
            libc::CLONE_NEWNS => 1,
            libc::CLONE_NEWUSER => 2,
            _ => 0,
        });
        // In the container's user namespace the child could not raise a hard limit.
        plan.rlimits_by_parent = ns.iter().any(|(_, t)| *t == libc::CLONE_NEWUSER);
        plan.ops = ns
            .into_iter()
            .map(|(fd, nstype)| Op::SetNs { fd, nstype })
            .collect();
        Ok(plan)
    }

    /// The part every process shares: what to run, as whom, where, with what.
    pub(super) fn for_process(p: &Process, host: HostFacts) -> Result<Plan, PlanError> {
        let arg0 = p.args.first().ok_or(PlanError::NoCommand)?;
        let keep = crate::caps::mask(&p.capabilities) & host.cap_permitted;
        let cap_drop = (0..=host.cap_last_cap)
            .filter(|c| keep & (1u64 << c) == 0)
            .map(libc::c_int::from)
            .collect();
        let path_env = p
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let exec_candidates = if arg0.contains('/') {
            vec![cstr("command", arg0.as_str())?]
        } else {
            path_env
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstr("command", format!("{}/{arg0}", d.trim_end_matches('/'))))
                .collect::<Result<_, _>>()?
        };
        Ok(Plan {
            clone_flags: 0,
            new_cgroupns: false,
            loopback_up: false,
            ops: Vec::new(),
            hostname: CString::default(),
            domainname: CString::default(),
            cap_drop,
            cap_mask: if p.uid == 0 { keep } else { 0 },
            uid: p.uid,
            gid: p.gid,
            groups: p.additional_gids.clone(),
            cwd: cstr(
                "working directory",
                if p.cwd.is_empty() {
                    "/"
                } else {
                    p.cwd.as_str()
                },
            )?,
            exec_candidates,
            argv: p
                .args
                .iter()
                .map(|a| cstr("argument", a.as_str()))
                .collect::<Result<_, _>>()?,
            envp: p
                .env
                .iter()
                .map(|e| cstr("environment variable", e.as_str()))
                .collect::<Result<_, _>>()?,
            cgroup_tasks: Vec::new(),
            controlling_tty: p.terminal,
            winsize: p.console_size,
            bind_console: false,
            rlimits: p
                .rlimits
                .iter()
                .map(|r| (r.resource, r.soft, r.hard))
                .collect(),
            seccomp: p
                .seccomp
                .as_ref()
                .map(|f| crate::seccomp::Program::decode(&f.program).0),
            seccomp_flags: p.seccomp.as_ref().map_or(0, |f| f.flags),
            no_new_privs: p.no_new_privileges,
            userns: None,
            prepare: Vec::new(),
            parent_ns: Vec::new(),
            parent_sysctls: Vec::new(),
            join_userns: None,
            rlimits_by_parent: false,
        })
    }

    /// Has the child enter the network namespace `fd` before any other step (sysfs
    /// is mounted later, and shows the namespace of whoever mounts it).
    pub fn join_netns(&mut self, fd: RawFd) {
        if self.userns.is_some() {
            self.parent_ns.push((fd, libc::CLONE_NEWNET));
            return;
        }
        self.ops.insert(
            0,
            Op::SetNs {
                fd,
                nstype: libc::CLONE_NEWNET,
            },
        );
    }

    /// Has the child enter another container's IPC namespace `fd` before its
    /// mounts (/dev/mqueue shows the IPC namespace of whoever mounts it).
    pub fn join_ipcns(&mut self, fd: RawFd) {
        self.ops.insert(
            0,
            Op::SetNs {
                fd,
                nstype: libc::CLONE_NEWIPC,
            },
        );
    }

    /// Has the child join these cgroup v1 `tasks` files before anything else.
    pub fn join_cgroup_tasks(&mut self, files: &[std::path::PathBuf]) -> Result<(), PlanError> {
        self.cgroup_tasks = files
            .iter()
            .map(|f| path_cstr("cgroup path", f))
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// Names the step a child reported as failed.
    pub fn describe_step(&self, index: i32) -> String {
        match index {
            step::EXEC => "exec".into(),
            step::SETSID => "setsid".into(),
            step::CGROUPNS => "creating the cgroup namespace".into(),
            step::STDIO => "setting up stdio".into(),
            step::LOOPBACK => "bringing up loopback".into(),
            step::HOSTNAME => "setting the hostname".into(),
            step::CAPBSET => "dropping bounding capabilities".into(),
            step::SETGROUPS => "setting supplementary groups".into(),
            step::SETGID => "setting gid".into(),
            step::SETUID => "setting uid".into(),
            step::CAPSET => "setting capabilities".into(),
            step::CGROUP_JOIN => "joining the cgroup".into(),
            step::TERMINAL => "allocating the terminal".into(),
            step::RLIMITS => "setting resource limits".into(),
            step::CLOSE_FDS => "closing inherited file descriptors".into(),
            step::NO_NEW_PRIVS => "setting no_new_privs".into(),
            step::SECCOMP => "loading the seccomp filter".into(),
            step::CWD_OUTSIDE => format!(
                "working directory {} is outside the container's root",
                self.cwd.to_string_lossy()
            ),
            step::CHDIR => format!(
                "changing to working directory {}",
                self.cwd.to_string_lossy()
            ),
            i if i >= 0 && (i as usize) < self.ops.len() => self.ops[i as usize].describe(),
            i => format!("unknown step {i}"),
        }
    }
}
