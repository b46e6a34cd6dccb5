#!/usr/bin/env python3
"""Build benchmarks (method and results: docs/BENCHMARKS.md, "Builds").

Starts a private berthd (release build) and, beside it, a private dockerd
(Debian's docker.io 20.10) on their own roots, loads the busybox test image into
both, makes a ~50 MB context and a 15-step Dockerfile, and times whole client
commands:
  - cold build (--no-cache), no-op rebuild (everything cached), rebuild after a
    change to one file copied late, and the context upload (a Dockerfile of
    `FROM busybox` alone over the same context);
  - for: berthd driven by the docker CLI v28 (classic /build: the whole context
    every time) and by `berth build` (which sends only what the daemon's kept copy
    of the context lacks; for the upload figure, a fresh directory each time);
    dockerd's classic builder (docker CLI v28, DOCKER_BUILDKIT=0); dockerd's
    BuildKit (/usr/bin/docker 20.10, DOCKER_BUILDKIT=1); and Docker Compose v2
    (`docker compose build`, BuildKit's control API on /grpc) against berthd and
    against dockerd, the same compose file for both.
Run as root from the repository, after `cargo build --release --workspace --bins`:
  python3 bench/build.py [--runs N]
"""
import argparse, os, random, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIPLE = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout.split("host: ")[1].split()[0]
BIN = os.path.join(ROOT, "target", TRIPLE, "release")
DOCKER = "/usr/local/bin/docker"
DOCKER20 = "/usr/bin/docker"

DOCKERFILE = """FROM busybox
ENV APP=/app LEVEL=3
LABEL bench=build
WORKDIR /app
COPY deps/ /app/deps/
RUN cat /app/deps/* | md5sum > /deps.sum
RUN mkdir -p /app/data && dd if=/dev/zero of=/app/data/zero bs=1M count=4 2>/dev/null
ARG BUILD=1
RUN echo build $BUILD > /app/build.txt
COPY src/ /app/src/
RUN ls /app/src | wc -l > /app/count
EXPOSE 8080
USER 1000
COPY late.txt /app/late.txt
RUN cat /app/late.txt > /tmp/late-copy
"""


def wait_ready(notify):
    notify.settimeout(60)
    while notify.recv(64) != b"READY=1":
        pass


def timed(cmd, env, cwd=None):
    t = time.perf_counter_ns()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ms = (time.perf_counter_ns() - t) / 1e6
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-2000:]}")
    return ms


def make_context(d):
    rnd = random.Random(7)
    os.makedirs(os.path.join(d, "src"))
    os.makedirs(os.path.join(d, "deps"))
    for i in range(200):
        with open(os.path.join(d, "src", f"f{i:03}.bin"), "wb") as f:
            f.write(rnd.randbytes(250 * 1024))
    for i in range(10):
        with open(os.path.join(d, "deps", f"d{i}.txt"), "w") as f:
            f.write(f"dependency {i}\n" * 100)
    open(os.path.join(d, "late.txt"), "w").write("late 0\n")
    open(os.path.join(d, "Dockerfile"), "w").write(DOCKERFILE)
    open(os.path.join(d, "Dockerfile.upload"), "w").write("FROM busybox\n")
    open(os.path.join(d, "compose.yaml"), "w").write(
        "services:\n  bench:\n    image: bench\n    build:\n      context: .\n      dockerfile: ${DF:-Dockerfile}\n")


def compose(where, extra):
    """`docker compose build` of the context `where`; `-f F` picks the Dockerfile."""
    cmd = [DOCKER, "compose", "--project-directory", where, "build", "-q"]
    df = None
    if extra[:1] == ["-f"]:
        df, extra = os.path.basename(extra[1]), extra[2:]
    return cmd + extra, df


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("dockerd"):
        sys.exit("dockerd is missing: apt-get install --no-install-recommends docker.io")
    tmp = tempfile.mkdtemp(prefix="berth-bbench-", dir="/tmp")
    exec_root = f"/run/bbb-{os.getpid()}"
    sock = os.path.join(tmp, "berth.sock")
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    cfg = os.path.join(tmp, "daemon.json")
    open(cfg, "w").write("{}")
    bridge = f"bb{os.getpid() % 100000}"
    pool = f"base=10.{random.randint(64, 240)}.0.0/16,size=24"
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, "data"),
                          "--exec-root", exec_root, "--config-file", cfg, "--cgroup-parent", f"berth-bbench-{os.getpid()}",
                          "--bridge", bridge, "--default-address-pool", pool],
                         env=dict(os.environ, NOTIFY_SOCKET=notify_path), stderr=open(os.path.join(tmp, "berthd.log"), "w"))
    dbridge = f"db{os.getpid() % 100000}"
    dockerd = None
    ctx = os.path.join(tmp, "ctx")
    try:
        wait_ready(notify)
        benv = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}",
                    DOCKER_CONFIG=os.path.join(tmp, "dc"), DOCKER_BUILDKIT="0")
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([os.path.join(BIN, "berth"), "load", "-q", "-i", tar], env=benv, check=True)
        subprocess.run(["ip", "link", "add", dbridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", "10.252.78.1/24", "dev", dbridge], check=True)
        subprocess.run(["ip", "link", "set", dbridge, "up"], check=True)
        dsock = os.path.join(tmp, "docker.sock")
        dockerd = subprocess.Popen(["dockerd", "-H", f"unix://{dsock}", "--data-root", os.path.join(tmp, "docker"),
                                    "--exec-root", f"/run/dbb-{os.getpid()}", "--pidfile", os.path.join(tmp, "dockerd.pid"),
                                    "--bridge", dbridge, "--iptables=false", "--ip6tables=false"],
                                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
        denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=os.path.join(tmp, "dc"), DOCKER_BUILDKIT="0")
        kenv = dict(denv, DOCKER_BUILDKIT="1")
        for _ in range(300):
            if subprocess.run([DOCKER, "version"], env=denv, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run([DOCKER, "load", "-q", "-i", tar], env=denv, check=True, stdout=subprocess.DEVNULL)
        make_context(ctx)
        size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ctx) for f in fs)
        print(f"context: {size / 1e6:.1f} MB, Dockerfile: {DOCKERFILE.count(chr(10))} instructions")

        cenv = dict(benv, DOCKER_BUILDKIT="1")
        ckenv = dict(kenv)
        clients = [
            ("berthd, docker CLI (classic /build)", [DOCKER, "build", "-q", "-t", "bench"], benv),
            ("berthd, berth build", [os.path.join(BIN, "berth"), "build", "-q", "-t", "bench"], benv),
            ("dockerd classic builder", [DOCKER, "build", "-q", "-t", "bench"], denv),
            ("dockerd BuildKit (docker 20.10)", [DOCKER20, "build", "-q", "-t", "bench"], kenv),
            ("berthd, compose v2", "compose", cenv),
            ("dockerd BuildKit, compose v2", "compose", ckenv),
        ]

        def timed_client(cmd, env, extra, where):
            if cmd == "compose":
                c, df = compose(where, extra)
                return timed(c, dict(env, DF=df or "Dockerfile"))
            return timed(cmd + extra + [where], env)
        results = {}
        late = [0]

        def touch_late():
            late[0] += 1
            open(os.path.join(ctx, "late.txt"), "w").write(f"late {late[0]}\n")

        # Warm-up: one full build each (fills caches, pulls nothing).
        for _, cmd, env in clients:
            timed_client(cmd, env, [], ctx)
        for name, cmd, env in clients:
            r = results.setdefault(name, {})
            r["cold"] = [timed_client(cmd, env, ["--no-cache"], ctx) for _ in range(max(2, args.runs // 2))]
        for _ in range(args.runs):
            for name, cmd, env in clients:
                results[name].setdefault("noop", []).append(timed_client(cmd, env, [], ctx))
        # A new content for each build, so that no client finds another's result.
        for _ in range(args.runs):
            for name, cmd, env in clients:
                touch_late()
                results[name].setdefault("late", []).append(timed_client(cmd, env, [], ctx))
        # The whole context goes: `berth build` gets a fresh copy of the directory
        # each time (a context the daemon has not kept), copied before the clock.
        for i in range(args.runs):
            for name, cmd, env in clients:
                where = ctx
                if "berth build" in name or "compose" in name:
                    # A directory of another name: no copy kept under its key.
                    where = f"{ctx}-fresh{i}-{len(name)}"
                    shutil.copytree(ctx, where, symlinks=True)
                    os.sync()
                results[name].setdefault("upload", []).append(
                    timed_client(cmd, env, ["-f", os.path.join(where, "Dockerfile.upload")], where))
        med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
        print(f"\n{'client':<40}{'cold':>10}{'no-op':>10}{'late file':>11}{'upload':>10}   (median ms)")
        for n, m in med.items():
            print(f"{n:<40}{m['cold']:>10.0f}{m['noop']:>10.0f}{m['late']:>11.0f}{m['upload']:>10.0f}")
        b = med["berthd, docker CLI (classic /build)"]
        for other in ["dockerd classic builder", "dockerd BuildKit (docker 20.10)"]:
            o = med[other]
            print(f"berthd (docker CLI) / {other}: cold {b['cold'] / o['cold']:.2f}x, no-op {b['noop'] / o['noop']:.2f}x, "
                  f"late file {b['late'] / o['late']:.2f}x, upload {b['upload'] / o['upload']:.2f}x")
        b, o = med["berthd, compose v2"], med["dockerd BuildKit, compose v2"]
        print(f"compose v2, berthd / dockerd BuildKit: cold {b['cold'] / o['cold']:.2f}x, no-op {b['noop'] / o['noop']:.2f}x, "
              f"late file {b['late'] / o['late']:.2f}x, upload {b['upload'] / o['upload']:.2f}x")
    finally:
        if dockerd:
            dockerd.send_signal(signal.SIGTERM)
            dockerd.wait()
        subprocess.run(["ip", "link", "del", dbridge], stderr=subprocess.DEVNULL)
        d.send_signal(signal.SIGTERM)
        d.wait()
        subprocess.run(["umount", "-R", os.path.join(tmp, "docker")], stderr=subprocess.DEVNULL)
        docker_exec = f"/run/dbb-{os.getpid()}"
        if os.path.isdir(docker_exec):
            subprocess.run(["umount", "-R", docker_exec], stderr=subprocess.DEVNULL)
            shutil.rmtree(docker_exec, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        for h in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", h, f"berth-bbench-{os.getpid()}")
            if os.path.isdir(p):
                try:
                    os.rmdir(p)
                except OSError:
                    pass


if __name__ == "__main__":
    main()
