#!/usr/bin/env python3
"""berth's storage benchmarks (method and results: docs/BENCHMARKS.md).

Starts a private berthd (release build) and measures:
  - `berth run --rm busybox true` with 5 named volumes and 5 bind mounts against
    the same run without them (interleaved runs);
  - the copy-up of a 100 MB image directory into a new volume: a run of an image
    whose VOLUME /data holds 100 MB, against the same run with `volume-nocopy`;
    the difference is the copy. Compared with `cp -a` of the same directory (from
    the image's layer) on the same disk.
Run as root from the repository: bench/storage.py [--runs N]
"""
import argparse, os, shutil, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import BIN, ROOT, summary, timed, wait_ready  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-stbench-", dir="/var/tmp")
    exec_root = f"/run/bs-{os.getpid()}"
    sock = os.path.join(tmp, "berth.sock")
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    cfg = os.path.join(tmp, "daemon.json")
    open(cfg, "w").write("{}")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    data = os.path.join(tmp, "data")
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", data,
                          "--exec-root", exec_root, "--config-file", cfg, "--cgroup-parent", f"berth-sbench-{os.getpid()}",
                          "--bridge", "none"],
                         env=env, stderr=open(os.path.join(tmp, "berthd.log"), "w"))
    berth = os.path.join(BIN, "berth")
    try:
        wait_ready(notify)
        cenv = dict(os.environ, BERTH_HOST=f"unix://{sock}")
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([berth, "load", "-q", "-i", tar], env=cenv, check=True)

        # 5 volumes and 5 bind mounts.
        mounts = []
        for i in range(5):
            subprocess.run([berth, "volume", "create", f"v{i}"], env=cenv, check=True, stdout=subprocess.DEVNULL)
            mounts += ["-v", f"v{i}:/vol{i}"]
            host = os.path.join(tmp, f"bind{i}")
            os.makedirs(host)
            mounts += ["-v", f"{host}:/bind{i}"]
        plain = [berth, "run", "--rm", "--network", "none", "busybox", "true"]
        with_mounts = [berth, "run", "--rm", "--network", "none"] + mounts + ["busybox", "true"]
        timed(plain, cenv, 5)
        timed(with_mounts, cenv, 5)
        a, b = [], []
        for _ in range(args.runs):
            a += timed(with_mounts, cenv, 1)
            b += timed(plain, cenv, 1)
        ma = summary("run with 5 volumes + 5 bind mounts", a)
        mb = summary("run without mounts", b)
        print(f"10 mounts cost {ma - mb:+.2f} ms")

        # A 100 MB directory in an image's VOLUME.
        subprocess.run([berth, "run", "--name", "big", "--network", "none", "busybox", "sh", "-c",
                        "mkdir -p /data/sub && for i in $(seq 1 100); do head -c 1048576 /dev/urandom > /data/sub/f$i; done"],
                       env=cenv, check=True)
        subprocess.run([berth, "commit", "--change", "VOLUME /data", "big", "bigvol"], env=cenv, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([berth, "rm", "big"], env=cenv, check=True, stdout=subprocess.DEVNULL)
        # Timed: `berth start` of a created container (the copy happens during the
        # start, before the process runs), with and without the copy. The run's
        # tail (the exit, and the kernel writing the new 100 MB back to disk) is
        # left out, as cp -a's own write-back is.
        def start_time(extra):
            cid = subprocess.run([berth, "create", "--network", "none"] + extra + ["bigvol", "true"], env=cenv,
                                 capture_output=True, text=True, check=True).stdout.strip()
            t = time.perf_counter_ns()
            subprocess.run([berth, "start", cid], env=cenv, check=True, stdout=subprocess.DEVNULL)
            ms = (time.perf_counter_ns() - t) / 1e6
            subprocess.run([berth, "wait", cid], env=cenv, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([berth, "rm", "-v", cid], env=cenv, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["sync"], check=True)
            return ms
        for _ in range(2):
            start_time([])
            start_time(["--mount", "type=volume,dst=/data,volume-nocopy"])
        c, n = [], []
        for _ in range(max(5, args.runs // 5)):
            c.append(start_time([]))
            n.append(start_time(["--mount", "type=volume,dst=/data,volume-nocopy"]))
        mc = summary("berth start, 100 MB VOLUME copied up", c)
        mn = summary("berth start, the same with volume-nocopy", n)
        copyup = mc - mn
        # cp -a of the same directory, from the image's top layer, on the same disk.
        layer = None
        for root, dirs, files in os.walk(os.path.join(data, "layers")):
            if root.endswith("/data/sub") and len(files) == 100:
                layer = os.path.dirname(root)
                break
        if layer is None:
            sys.exit("the 100 MB layer directory was not found")
        cps = []
        for i in range(max(5, args.runs // 5)):
            dst = os.path.join(tmp, f"cp{i}")
            t = time.perf_counter_ns()
            subprocess.run(["cp", "-a", layer, dst], check=True)
            cps.append((time.perf_counter_ns() - t) / 1e6)
            shutil.rmtree(dst)
            subprocess.run(["sync"], check=True)
        mcp = summary("cp -a of the same 100 MB directory", cps)
        print(f"copy-up {copyup:.1f} ms, cp -a {mcp:.1f} ms: copy-up runs at {mcp / copyup * 100:.0f}% of cp -a's speed")
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        for h in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", h, f"berth-sbench-{os.getpid()}")
            if os.path.isdir(p):
                os.rmdir(p)


if __name__ == "__main__":
    main()
