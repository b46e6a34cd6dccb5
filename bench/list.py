#!/usr/bin/env python3
"""The list endpoint under load (method and results: docs/BENCHMARKS.md).

Starts a private berthd (release build) on a temporary root, loads the busybox test
image, starts 200 containers (`sleep`, no network: the list is what is measured) and
drives `GET /containers/json?all=1` with list-load (crates/berth-tests/src/bin), one
keep-alive connection per client on the unix socket:
  - throughput: 4 clients as fast as they go, requests per second;
  - latency: 4 clients at 250 requests per second in all, p50 and p99 counted from
    each request's scheduled time.
With --docker the same against a private dockerd (Debian's docker.io) beside it.
Run as root from the repository: bench/list.py [--containers N] [--seconds S] [--docker]
"""
import argparse, json, os, shutil, signal, socket, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import BIN, DOCKER, ROOT, wait_ready  # noqa: E402


def load(sock, clients, seconds, rate=None):
    cmd = [os.path.join(BIN, "list-load"), sock, "/containers/json?all=1", str(clients), str(seconds)]
    if rate:
        cmd.append(str(rate))
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def measure(name, sock, seconds):
    load(sock, 4, 1)  # warm-up
    t = load(sock, 4, seconds)
    l = load(sock, 4, seconds, 250)
    print(f"{name}: {t['per_second']:.0f} requests/s with 4 clients ({t['body_bytes']} bytes each); "
          f"at 250/s: p50 {l['p50_ms']:.2f} ms, p99 {l['p99_ms']:.2f} ms, max {l['max_ms']:.2f} ms")


def start_containers(env, n, extra=()):
    def one(_):
        subprocess.run([DOCKER, "run", "-d", *extra, "busybox", "sleep", "100000"], env=env,
                       stdout=subprocess.DEVNULL, check=True)
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-list-", dir="/tmp")
    exec_root = f"/run/bl-{os.getpid()}"
    sock = os.path.join(tmp, "berth.sock")
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    cfg = os.path.join(tmp, "daemon.json")
    open(cfg, "w").write("{}")
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, "data"),
                          "--exec-root", exec_root, "--config-file", cfg, "--cgroup-parent", f"berth-list-{os.getpid()}",
                          "--bridge", "none"],
                         env=dict(os.environ, NOTIFY_SOCKET=notify_path), stderr=open(os.path.join(tmp, "berthd.log"), "w"))
    dockerd = None
    try:
        wait_ready(notify)
        env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([DOCKER, "load", "-q", "-i", tar], env=env, check=True, stdout=subprocess.DEVNULL)
        start_containers(env, args.containers, ["--network", "none"])
        measure(f"berthd, {args.containers} running containers", sock, args.seconds)
        if args.docker:
            dsock = os.path.join(tmp, "docker.sock")
            dockerd = subprocess.Popen(["dockerd", "-H", f"unix://{dsock}", "--data-root", os.path.join(tmp, "docker"),
                                        "--exec-root", f"/run/bld-{os.getpid()}", "--pidfile", os.path.join(tmp, "dockerd.pid"),
                                        "--bridge", "none", "--iptables=false", "--ip6tables=false"],
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
            for _ in range(300):
                if subprocess.run([DOCKER, "version"], env=denv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            subprocess.run([DOCKER, "load", "-q", "-i", tar], env=denv, check=True, stdout=subprocess.DEVNULL)
            start_containers(denv, args.containers, ["--network", "none"])
            measure(f"dockerd, {args.containers} running containers", dsock, args.seconds)
            ids = subprocess.run([DOCKER, "ps", "-aq"], env=denv, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run([DOCKER, "rm", "-f", *ids], env=denv, stdout=subprocess.DEVNULL)
    finally:
        ids = subprocess.run([DOCKER, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([DOCKER, "rm", "-f", *ids], env=env, stdout=subprocess.DEVNULL)
        for p in (dockerd, d):
            if p:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)


if __name__ == "__main__":
    main()
