#!/usr/bin/env bash
# berth's main job, from a fresh checkout: build, start berthd on the default
# socket, make a local busybox image, and run containers with berth and the docker CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --workspace --bins --locked
bin=target/$(rustc -vV | sed -n 's/^host: //p')/release
sock=/run/berth/berth.sock
export BERTH_HOST=unix://$sock
if ! $bin/berth version >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup $bin/berthd >/var/log/berthd.log 2>&1 &
  for _ in $(seq 100); do
    $bin/berth version >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
scripts/mkimage-busybox.sh /tmp/berth-busybox.tar
$bin/berth load -i /tmp/berth-busybox.tar
$bin/berth run --rm busybox echo "hello from a berth container"
# An image built from a Dockerfile, then run.
demo_ctx=$(mktemp -d)
printf 'FROM busybox\nRUN echo "built by berth on $(date -u +%%F)" > /built\nCMD ["cat", "/built"]\n' > "$demo_ctx/Dockerfile"
$bin/berth build --progress plain -q -t demo-built "$demo_ctx" >/dev/null
$bin/berth run --rm demo-built
rm -rf "$demo_ctx"
# Two containers on a user-defined network, one reaching the other by name.
$bin/berth rm -f demo-web >/dev/null 2>&1 || true
$bin/berth network rm demo-net >/dev/null 2>&1 || true
$bin/berth network create demo-net >/dev/null
$bin/berth run -d --name demo-web --network demo-net busybox sh -c \
  'mkdir -p /www && echo "hello from demo-web, found by name" > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
for _ in $(seq 50); do
  $bin/berth run --rm --network demo-net busybox wget -qO- http://demo-web/index.html 2>/dev/null && break
  sleep 0.1
done
$bin/berth rm -f demo-web >/dev/null
$bin/berth network rm demo-net >/dev/null
if [ -x /usr/local/bin/docker ]; then
  DOCKER_HOST=unix://$sock /usr/local/bin/docker run --rm busybox sh -c 'echo "hello from the docker CLI, in $(hostname)"'
fi
echo "berthd is running (log: /var/log/berthd.log). Use it with: export DOCKER_HOST=unix://$sock"
