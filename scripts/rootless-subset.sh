#!/usr/bin/env bash
# The suite's rootless subset: the docker CLI tests of these files run again
# against a rootless berthd (every daemon a test starts is run as the user
# berthrl, see Daemon::start_rootless), except the tests listed below, each with
# the reason it cannot apply to a rootless berthd on this machine (cgroup v1,
# so no delegated cgroup v2 subtree: no cgroups at all).
set -euo pipefail
cd "$(dirname "$0")/.."
files=(docker_cli lifecycle exec storage health images cp restart observe interactive)
excluded=(
  # No cgroups: limits are discarded (dockerd's warning), nothing to OOM-kill or count.
  resource_limits_oom_and_pids
  start_failures_use_dockers_exit_codes      # its --cpu-rt-runtime refusal needs cgroups
  cpu_limits_at_create_and_update
  memory_swap_reservation_and_cpuset_mems
  update_limits_and_policy_of_a_running_container
  stats_show_limits_and_usage
  # No freezer cgroup: pause is refused with the reason.
  pause_freezes_and_unpause_thaws
  berth_pause_rename_top
  # The test's data root is an overlay it mounts as the host's root, which the
  # user cannot write.
  on_an_overlayfs_data_root_berthd_uses_vfs
  # The test makes things as the host's root that the user cannot reach: a
  # legacy plugin's socket in a root-only directory, root-owned bind sources
  # (nobody's inside the user namespace), shared mounts (slaves in the user's
  # mount namespace).
  a_legacy_volume_plugin_serves_volumes
  bind_mounts_read_only_files_and_errors
  bind_propagation_reaches_across_as_asked
  # The rootless berthd holds every capability of its user namespace, more than
  # the test's own (host) set it compares with.
  privileged_exec_gets_every_capability_the_daemon_has
  # A TCP listener is in berthd's network namespace, not reachable from the host.
  attach_over_a_websocket
)
filter=""
for f in "${files[@]}"; do filter+="${filter:+ | }binary(=$f)"; done
skip=""
for t in "${excluded[@]}"; do skip+="${skip:+ | }test(=$t)"; done
BERTH_TEST_ROOTLESS=1 cargo nextest run -p berth-tests --locked -E "($filter) & !($skip)"
