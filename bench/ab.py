#!/usr/bin/env python3
"""Two builds of berth side by side (method and results: docs/BENCHMARKS.md).

Starts one private berthd from each build (each with its own data root, exec root,
socket, cgroup parent, bridge and address pool), loads the busybox test image into
both, and times the same commands against each, alternating run by run so that the
machine's drift hits both alike:
  - `berth run --rm busybox true` (each build's own CLI);
  - `berth exec c true` on a running container;
  - with 100 running containers in each: `docker ps` (the docker CLI), and the API
    call alone (GET /containers/json).
Run as root from the repository, after building both:
    bench/ab.py --a OLD/target/<triple>/release --b target/<triple>/release [--runs N]
"""
import argparse, http.client, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import DOCKER, ROOT, wait_ready  # noqa: E402


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("berth")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


class Side:
    def __init__(self, name, bindir, tmp, n):
        self.name, self.bin = name, bindir
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "berth.sock")
        self.exec_root = f"/run/bab-{os.getpid()}-{name}"
        notify_path = os.path.join(self.dir, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        cfg = os.path.join(self.dir, "daemon.json")
        open(cfg, "w").write("{}")
        self.proc = subprocess.Popen(
            [os.path.join(bindir, "berthd"), "-H", f"unix://{self.sock}", "--data-root", os.path.join(self.dir, "data"),
             "--exec-root", self.exec_root, "--config-file", cfg, "--cgroup-parent", f"berth-ab-{os.getpid()}-{name}",
             "--bridge", f"bab{n}-{os.getpid() % 10000}", "--bip", f"10.23{n}.0.1/24",
             "--default-address-pool", f"base=10.24{n}.0.0/16,size=24"],
            env=dict(os.environ, NOTIFY_SOCKET=notify_path), stderr=open(os.path.join(self.dir, "berthd.log"), "w"))
        wait_ready(notify)
        self.env = dict(os.environ, BERTH_HOST=f"unix://{self.sock}", DOCKER_HOST=f"unix://{self.sock}",
                        DOCKER_CONFIG=os.path.join(self.dir, "dc"))

    def berth(self, *args):
        return [os.path.join(self.bin, "berth"), *args]

    def check(self, cmd):
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=True).stdout.strip()

    def time(self, cmd):
        t = time.perf_counter_ns()
        r = subprocess.run(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.exit(f"{self.name}: {' '.join(cmd)} failed: {r.stderr.decode()}")
        return (time.perf_counter_ns() - t) / 1e6

    def api(self, path):
        t = time.perf_counter_ns()
        c = UnixHTTP(self.sock)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 200:
            sys.exit(f"{self.name}: GET {path}: {r.status}")
        return (time.perf_counter_ns() - t) / 1e6

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.exec_root, ignore_errors=True)


def alternate(name, sides, make, runs):
    """`make(side)` gives a zero-argument timer; the sides take turns."""
    timers = [make(s) for s in sides]
    for t in timers:
        for _ in range(3):
            t()
    got = [[] for _ in sides]
    for _ in range(runs):
        for i, t in enumerate(timers):
            got[i].append(t())
    meds = [statistics.median(g) for g in got]
    cols = "   ".join(f"{s.name} {m:7.2f} ms" for s, m in zip(sides, meds))
    print(f"{name:<36} {cols}   b/a {meds[1] / meds[0]:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the first build's binaries (before)")
    ap.add_argument("--b", required=True, help="the second build's binaries (after)")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--containers", type=int, default=100)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-ab-", dir="/tmp")
    sides = []
    try:
        sides = [Side("a", args.a, tmp, 5), Side("b", args.b, tmp, 6)]
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True, stdout=subprocess.DEVNULL)
        for s in sides:
            s.check(s.berth("load", "-q", "-i", tar))
        alternate("berth run --rm busybox true", sides,
                  lambda s: (lambda: s.time(s.berth("run", "--rm", "busybox", "true"))), args.runs)
        targets = {s.name: s.check(s.berth("run", "-d", "busybox", "sleep", "1000")) for s in sides}
        alternate("berth exec c true", sides,
                  lambda s: (lambda: s.time(s.berth("exec", targets[s.name], "true"))), args.runs)
        for s in sides:
            for _ in range(args.containers - 1):
                s.check(s.berth("run", "-d", "busybox", "sleep", "1000"))
        time.sleep(1)
        alternate(f"docker ps ({args.containers} running)", sides, lambda s: (lambda: s.time([DOCKER, "ps"])), args.runs)
        alternate(f"GET /containers/json ({args.containers})", sides,
                  lambda s: (lambda: s.api("/containers/json")), args.runs)
        for s in sides:
            ids = s.check(s.berth("ps", "-aq")).split()
            s.check(s.berth("rm", "-f", *ids))
    finally:
        for s in sides:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
