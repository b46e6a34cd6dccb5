#!/usr/bin/env python3
"""The cost of `--userns-remap` (method and results: docs/BENCHMARKS.md).

berth gives a remapped container its image, writable layer and volumes through
ID-mapped mounts, which cost the same whatever the image's size; the alternative is a
copy of the image chowned into the remapped range (what dockerd's remapped store
does once per image). This measures, on private berthds (release build):
  - `docker run --rm --network none busybox true` without and with --userns-remap,
    interleaved, N times each: median and p90;
  - a chowned copy of the busybox image's layer tree, and of a synthetic tree of
    10000 files (64 KiB each spread over 100 directories), as that alternative costs.
With --docker: dockerd (Debian's docker.io) with --userns-remap default: the load of
the busybox image into its remapped store and the same run.
Run as root from the repository: bench/userns.py [--runs N] [--docker]
"""
import argparse, os, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import BIN, DOCKER, ROOT, summary, timed, wait_ready  # noqa: E402


def start_berthd(tmp, name, extra):
    sock = os.path.join(tmp, f"{name}.sock")
    notify_path = os.path.join(tmp, f"{name}.notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    cfg = os.path.join(tmp, f"{name}.json")
    open(cfg, "w").write("{}")
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, name),
                          "--exec-root", f"/run/bu{name[0]}-{os.getpid()}", "--config-file", cfg,
                          "--cgroup-parent", f"berth-userns-{name}-{os.getpid()}", "--bridge", "none", *extra],
                         env=dict(os.environ, NOTIFY_SOCKET=notify_path), stderr=open(os.path.join(tmp, f"{name}.log"), "w"))
    wait_ready(notify)
    return d, dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))


def chown_copy(src, dst, offset=100000):
    """A copy of `src` with every owner shifted by `offset`: cp -a, then lchown."""
    t = time.perf_counter()
    subprocess.run(["cp", "-a", src, dst], check=True)
    for top, dirs, files in os.walk(dst):
        for n in dirs + files:
            p = os.path.join(top, n)
            st = os.lstat(p)
            os.lchown(p, st.st_uid + offset, st.st_gid + offset)
    st = os.lstat(dst)
    os.lchown(dst, st.st_uid + offset, st.st_gid + offset)
    return (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-userns-", dir="/tmp")
    daemons = []
    dockerd = None
    try:
        plain, penv = start_berthd(tmp, "plain", [])
        daemons.append(plain)
        remap, renv = start_berthd(tmp, "remap", ["--userns-remap", "default"])
        daemons.append(remap)
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        for env in (penv, renv):
            subprocess.run([DOCKER, "load", "-q", "-i", tar], env=env, check=True, stdout=subprocess.DEVNULL)
        run = [DOCKER, "run", "--rm", "--network", "none", "busybox", "true"]
        timed(run, penv, 3)
        timed(run, renv, 3)
        pt, rt = [], []
        for _ in range(args.runs):
            pt += timed(run, penv, 1)
            rt += timed(run, renv, 1)
        p = summary("docker run --rm, berthd", pt)
        r = summary("docker run --rm, berthd --userns-remap", rt)
        print(f"remapped / plain: {r / p:.2f}x ({r - p:+.1f} ms)")

        layers = os.path.join(tmp, "plain", "layers")
        layer = next(os.path.join(layers, l, "diff") for l in sorted(os.listdir(layers))
                     if os.path.isdir(os.path.join(layers, l, "diff")))
        n = sum(len(f) + len(d) for _, d, f in os.walk(layer))
        ms = chown_copy(layer, os.path.join(tmp, "chowned-busybox"))
        print(f"chowned copy of the busybox layer ({n} entries): {ms:.1f} ms")
        synth = os.path.join(tmp, "synthetic")
        blob = os.urandom(64 << 10)
        for i in range(100):
            d = os.path.join(synth, f"d{i}")
            os.makedirs(d)
            for j in range(100):
                with open(os.path.join(d, f"f{j}"), "wb") as f:
                    f.write(blob)
        subprocess.run(["sync"])
        ms = chown_copy(synth, os.path.join(tmp, "chowned-synthetic"))
        print(f"chowned copy of 10000 files of 64 KiB: {ms:.1f} ms")

        if args.docker:
            dsock = os.path.join(tmp, "docker.sock")
            dockerd = subprocess.Popen(["dockerd", "-H", f"unix://{dsock}", "--data-root", os.path.join(tmp, "docker"),
                                        "--exec-root", f"/run/bud-{os.getpid()}", "--pidfile", os.path.join(tmp, "dockerd.pid"),
                                        "--bridge", "none", "--iptables=false", "--ip6tables=false",
                                        "--userns-remap", "default"],
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
            for _ in range(300):
                if subprocess.run([DOCKER, "version"], env=denv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            t = time.perf_counter()
            subprocess.run([DOCKER, "load", "-q", "-i", tar], env=denv, check=True, stdout=subprocess.DEVNULL)
            print(f"dockerd --userns-remap: docker load of busybox: {(time.perf_counter() - t) * 1000:.0f} ms")
            timed(run, denv, 3)
            d = summary("docker run --rm, dockerd --userns-remap", timed(run, denv, args.runs))
            print(f"berthd remapped / dockerd remapped: {r / d:.2f}x")
    finally:
        for p in [dockerd, *daemons]:
            if p:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
        for n in ("p", "r"):
            shutil.rmtree(f"/run/bu{n}-{os.getpid()}", ignore_errors=True)
        shutil.rmtree(f"/run/bud-{os.getpid()}", ignore_errors=True)


if __name__ == "__main__":
    main()
