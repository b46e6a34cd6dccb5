#!/usr/bin/env python3
"""berth's start-path and memory benchmarks (method and results: docs/BENCHMARKS.md).

Starts a private berthd (release build) on a temporary root, loads the busybox test
image, and measures:
  - `berth run --rm busybox true`, end to end, N times: median and p90;
  - the same with and without the default seccomp profile, interleaved;
  - the same run driven by the docker CLI against berthd;
  - with --docker: the same run with the docker CLI against a private dockerd
    (Debian's docker.io) on its own root, for the ratio;
  - the RSS of each shim with 10 idle containers, and berthd's RSS when idle.
Run as root from the repository: bench/startup.py [--runs N] [--docker]
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIPLE = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout.split("host: ")[1].split()[0]
BIN = os.path.join(ROOT, "target", TRIPLE, "release")
DOCKER = "/usr/local/bin/docker"


def wait_ready(notify):
    notify.settimeout(60)
    while notify.recv(64) != b"READY=1":
        pass


def timed(cmd, env, n):
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append((time.perf_counter_ns() - t) / 1e6)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {r.stderr.decode()}")
    return times


def summary(name, times):
    times = sorted(times)
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"{name:<48} median {statistics.median(times):7.1f} ms   p90 {p90:7.1f} ms   min {times[0]:6.1f} ms   (n={len(times)})")
    return statistics.median(times)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--docker", action="store_true", help="also measure a private dockerd (docker.io)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-bench-", dir="/tmp")
    exec_root = f"/run/bb-{os.getpid()}"
    sock = os.path.join(tmp, "berth.sock")
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    cfg = os.path.join(tmp, "daemon.json")
    open(cfg, "w").write("{}")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, "data"),
                          "--exec-root", exec_root, "--config-file", cfg, "--cgroup-parent", f"berth-bench-{os.getpid()}"],
                         env=env, stderr=open(os.path.join(tmp, "berthd.log"), "w"))
    dockerd = None
    try:
        wait_ready(notify)
        cenv = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([os.path.join(BIN, "berth"), "load", "-q", "-i", tar], env=cenv, check=True)
        time.sleep(0.5)
        print(f"berthd idle RSS (image loaded, no containers): {rss_kb(d.pid)} kB")
        berth = [os.path.join(BIN, "berth"), "run", "--rm", "busybox", "true"]
        timed(berth, cenv, 5)
        summary("berth run --rm busybox true", timed(berth, cenv, args.runs))
        summary("berth run --rm --network none busybox true", timed(berth[:3] + ["--network", "none"] + berth[3:], cenv, args.runs))
        # What the default seccomp profile costs: the same run unconfined,
        # interleaved run by run so that drift hits both alike.
        unconfined = berth[:3] + ["--security-opt", "seccomp=unconfined"] + berth[3:]
        timed(unconfined, cenv, 5)
        with_filter, without = [], []
        for _ in range(args.runs):
            with_filter += timed(berth, cenv, 1)
            without += timed(unconfined, cenv, 1)
        a = summary("berth run --rm busybox true   (seccomp default)", with_filter)
        b = summary("berth run --rm --security-opt seccomp=unconfined", without)
        print(f"the default seccomp profile costs {a - b:+.2f} ms per run (difference of medians)")
        dk = [DOCKER, "run", "--rm", "busybox", "true"]
        timed(dk, cenv, 5)
        summary("docker run --rm busybox true   (berthd)", timed(dk, cenv, args.runs))
        summary("docker version (CLI alone, no container)", timed([DOCKER, "version"], cenv, args.runs))

        target = subprocess.run([os.path.join(BIN, "berth"), "run", "-d", "busybox", "sleep", "1000"], env=cenv,
                                capture_output=True, text=True, check=True).stdout.strip()
        bx = [os.path.join(BIN, "berth"), "exec", target, "true"]
        timed(bx, cenv, 5)
        summary("berth exec c true", timed(bx, cenv, args.runs))
        dx = [DOCKER, "exec", target, "true"]
        timed(dx, cenv, 5)
        summary("docker exec c true   (berthd)", timed(dx, cenv, args.runs))
        subprocess.run([os.path.join(BIN, "berth"), "rm", "-f", target], env=cenv, stdout=subprocess.DEVNULL, check=True)

        ids = [subprocess.run([os.path.join(BIN, "berth"), "run", "-d", "busybox", "sleep", "1000"], env=cenv,
                              capture_output=True, text=True, check=True).stdout.strip() for _ in range(10)]
        time.sleep(0.5)
        shims = subprocess.run(["pgrep", "-f", f"berth-shim {exec_root}/"], capture_output=True, text=True).stdout.split()
        rss = [rss_kb(int(p)) for p in shims]
        print(f"shim RSS with 10 idle containers: max {max(rss)} kB, mean {sum(rss) // len(rss)} kB ({len(rss)} shims)")
        print(f"berthd RSS with 10 idle containers: {rss_kb(d.pid)} kB")
        subprocess.run([os.path.join(BIN, "berth"), "rm", "-f"] + ids, env=cenv, stdout=subprocess.DEVNULL, check=True)

        if args.docker:
            droot = os.path.join(tmp, "docker")
            dsock = os.path.join(tmp, "docker.sock")
            dockerd = subprocess.Popen(["dockerd", "-H", f"unix://{dsock}", "--data-root", droot, "--exec-root", f"/run/bd-{os.getpid()}",
                                        "--pidfile", os.path.join(tmp, "dockerd.pid"), "--bridge", "none", "--iptables=false",
                                        "--ip6tables=false"], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
            for _ in range(300):
                if subprocess.run([DOCKER, "version"], env=denv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            subprocess.run([DOCKER, "load", "-q", "-i", tar], env=denv, check=True, stdout=subprocess.DEVNULL)
            dkn = [DOCKER, "run", "--rm", "--network", "none", "busybox", "true"]
            timed(dkn, denv, 5)
            summary("docker run --rm --network none busybox true (dockerd)", timed(dkn, denv, args.runs))
            dtarget = subprocess.run([DOCKER, "run", "-d", "--network", "none", "busybox", "sleep", "1000"], env=denv,
                                     capture_output=True, text=True, check=True).stdout.strip()
            ddx = [DOCKER, "exec", dtarget, "true"]
            timed(ddx, denv, 5)
            summary("docker exec c true   (dockerd)", timed(ddx, denv, args.runs))
            subprocess.run([DOCKER, "rm", "-f", dtarget], env=denv, stdout=subprocess.DEVNULL, check=True)
            print(f"dockerd RSS (idle, image loaded): {rss_kb(dockerd.pid)} kB")
    finally:
        if dockerd:
            dockerd.send_signal(signal.SIGTERM)
            dockerd.wait()
        d.send_signal(signal.SIGTERM)
        d.wait()
        subprocess.run(["umount", "-R", os.path.join(tmp, "docker")], stderr=subprocess.DEVNULL)
        docker_exec = f"/run/bd-{os.getpid()}"
        if os.path.isdir(docker_exec):
            subprocess.run(["umount", "-R", docker_exec], stderr=subprocess.DEVNULL)
            shutil.rmtree(docker_exec, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        for h in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", h, f"berth-bench-{os.getpid()}")
            if os.path.isdir(p):
                os.rmdir(p)


if __name__ == "__main__":
    main()
