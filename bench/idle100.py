#!/usr/bin/env python3
"""100 idle containers (method and results: docs/BENCHMARKS.md).

Starts a private berthd (release build), runs 100 `busybox sleep` containers, and
measures: `docker ps` and `docker stats --no-stream` wall time (docker CLI), the
same two API calls made directly (GET /containers/json; one stats sample for each
container), and berthd's CPU time over 10 idle seconds. Run as root from the
repository: bench/idle100.py [--count N]
"""
import argparse, http.client, os, shutil, signal, socket, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIPLE = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout.split("host: ")[1].split()[0]
BIN = os.path.join(ROOT, "target", TRIPLE, "release")
DOCKER = "/usr/local/bin/docker"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("berth")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def api(sock, path):
    c = UnixHTTP(sock)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return body


def median_ms(f, n=20):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime, in clock ticks (1/100 s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-idle-", dir="/tmp")
    exec_root = f"/run/bi-{os.getpid()}"
    sock = os.path.join(tmp, "berth.sock")
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(60)
    cfg = os.path.join(tmp, "daemon.json")
    open(cfg, "w").write("{}")
    parent = f"berth-idle-{os.getpid()}"
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, "data"),
                          "--exec-root", exec_root, "--config-file", cfg, "--cgroup-parent", parent],
                         env=dict(os.environ, NOTIFY_SOCKET=notify_path), stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        while notify.recv(64) != b"READY=1":
            pass
        env = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([os.path.join(BIN, "berth"), "load", "-q", "-i", tar], env=env, check=True)
        ids = [subprocess.run([os.path.join(BIN, "berth"), "run", "-d", "busybox", "sleep", "100000"], env=env,
                              capture_output=True, text=True, check=True).stdout.strip() for _ in range(args.count)]
        run = lambda cmd: subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
        print(f"{args.count} idle containers")
        print(f"docker ps                     median {median_ms(lambda: run([DOCKER, 'ps'])):7.1f} ms")
        print(f"docker stats --no-stream      median {median_ms(lambda: run([DOCKER, 'stats', '--no-stream']), 5):7.1f} ms")
        print(f"docker version (CLI alone)    median {median_ms(lambda: run([DOCKER, 'version'])):7.1f} ms")
        print(f"API GET /containers/json      median {median_ms(lambda: api(sock, '/containers/json')):7.1f} ms")
        print(f"API stats, one sample each    median {median_ms(lambda: [api(sock, f'/containers/{i}/stats?stream=false') for i in ids], 5):7.1f} ms (all {args.count})")
        time.sleep(2)
        t0, c0 = time.time(), cpu_ticks(d.pid)
        time.sleep(10)
        t1, c1 = time.time(), cpu_ticks(d.pid)
        print(f"berthd CPU while idle         {(c1 - c0) / 100 / (t1 - t0) * 100:.2f} % of one core over {t1 - t0:.0f} s")
        rss = [l for l in open(f"/proc/{d.pid}/status") if l.startswith("VmRSS")][0].split()[1]
        print(f"berthd RSS                    {rss} kB")
        subprocess.run([os.path.join(BIN, "berth"), "rm", "-f"] + ids, env=env, stdout=subprocess.DEVNULL, check=True)
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)


if __name__ == "__main__":
    main()
