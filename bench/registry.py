#!/usr/bin/env python3
"""berth's registry benchmarks (method and results: docs/BENCHMARKS.md).

Starts Debian's docker-registry on 127.0.0.1, a private berthd and (with --docker) a
private dockerd (Debian's docker.io) beside it. Makes a 5-layer image of about
300 MB (busybox plus five layers of 60 MB of random data) with berth, pushes it to an
empty registry with berth and with the docker CLI against dockerd, and pulls it into
a cold store with each, N times. Run as root from the repository:
bench/registry.py [--runs N] [--docker]
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import BIN, DOCKER, ROOT, wait_ready  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.decode()}")
    return time.perf_counter() - t


def start_registry(tmp, name):
    port = free_port()
    root = os.path.join(tmp, name)
    cfg = os.path.join(tmp, f"{name}.yml")
    open(cfg, "w").write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    p = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port, root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-regbench-", dir="/var/tmp")
    exec_root = f"/run/br-{os.getpid()}"
    sock = os.path.join(tmp, "berth.sock")
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    cfg = os.path.join(tmp, "daemon.json")
    open(cfg, "w").write("{}")
    data = os.path.join(tmp, "data")
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", data, "--exec-root", exec_root,
                          "--config-file", cfg, "--cgroup-parent", f"berth-rbench-{os.getpid()}", "--bridge", "none"],
                         env=dict(os.environ, NOTIFY_SOCKET=notify_path), stderr=open(os.path.join(tmp, "berthd.log"), "w"))
    berth = os.path.join(BIN, "berth")
    regs = []
    dockerd = None
    try:
        wait_ready(notify)
        env = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([berth, "load", "-q", "-i", tar], env=env, check=True, stdout=subprocess.DEVNULL)
        base = "busybox"
        for i in range(5):
            subprocess.run([berth, "run", "--name", f"l{i}", "--network", "none", base, "sh", "-c",
                            f"head -c 62914560 /dev/urandom > /layer{i}"], env=env, check=True)
            subprocess.run([berth, "commit", f"l{i}", f"big:{i}"], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([berth, "rm", f"l{i}"], env=env, check=True, stdout=subprocess.DEVNULL)
            base = f"big:{i}"
        results = {}

        def cold_berth():
            out = subprocess.run([berth, "images", "-q"], env=env, capture_output=True, text=True).stdout.split()
            if out:
                subprocess.run([berth, "rmi", "-f"] + out, env=env, stdout=subprocess.DEVNULL)
            subprocess.run(["sync"])

        # Push to an empty registry, then pull into a cold store.
        pushes, pulls = [], []
        for r in range(args.runs):
            reg, port, root = start_registry(tmp, f"reg-b{r}")
            regs.append(reg)
            name = f"127.0.0.1:{port}/bench/big:1"
            subprocess.run([berth, "tag", "big:4", name], env=env, check=True)
            subprocess.run(["sync"])
            pushes.append(timed([berth, "push", name], env))
            if r == 0:
                cold_berth()
            else:
                subprocess.run([berth, "rmi", name], env=env, stdout=subprocess.DEVNULL)
                cold_berth()
            pulls.append(timed([berth, "pull", name], env))
            # Back to a store with the local image for the next push.
            subprocess.run([berth, "tag", name, "big:4"], env=env, check=True)
        results["berth push"] = pushes
        results["berth pull"] = pulls
        for k, v in results.items():
            print(f"{k:<40} median {statistics.median(v):6.2f} s   runs {', '.join(f'{x:.2f}' for x in v)}")

        if args.docker:
            droot = os.path.join(tmp, "docker")
            dsock = os.path.join(tmp, "docker.sock")
            dockerd = subprocess.Popen(["dockerd", "-H", f"unix://{dsock}", "--data-root", droot, "--exec-root", f"/run/drb-{os.getpid()}",
                                        "--pidfile", os.path.join(tmp, "dockerd.pid"), "--bridge", "none", "--iptables=false", "--ip6tables=false"],
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
            for _ in range(300):
                if subprocess.run([DOCKER, "version"], env=denv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            # The same image, moved into dockerd through a registry.
            reg, port, _ = start_registry(tmp, "reg-seed")
            regs.append(reg)
            seed = f"127.0.0.1:{port}/bench/big:1"
            subprocess.run([berth, "tag", "big:4", seed], env=env, check=True)
            subprocess.run([berth, "push", seed], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([DOCKER, "pull", "-q", seed], env=denv, check=True, stdout=subprocess.DEVNULL)
            dpush, dpull = [], []
            for r in range(args.runs):
                reg, port, _ = start_registry(tmp, f"reg-d{r}")
                regs.append(reg)
                name = f"127.0.0.1:{port}/bench/big:1"
                subprocess.run([DOCKER, "tag", seed, name], env=denv, check=True)
                subprocess.run(["sync"])
                dpush.append(timed([DOCKER, "push", name], denv))
                imgs = subprocess.run([DOCKER, "images", "-q"], env=denv, capture_output=True, text=True).stdout.split()
                subprocess.run([DOCKER, "rmi", "-f"] + imgs, env=denv, stdout=subprocess.DEVNULL)
                subprocess.run(["sync"])
                dpull.append(timed([DOCKER, "pull", name], denv))
                subprocess.run([DOCKER, "tag", name, seed], env=denv, check=True)
            for k, v in [("docker push (dockerd 20.10)", dpush), ("docker pull (dockerd 20.10)", dpull)]:
                print(f"{k:<40} median {statistics.median(v):6.2f} s   runs {', '.join(f'{x:.2f}' for x in v)}")
            print(f"pull: berth/docker = {statistics.median(pulls) / statistics.median(dpull):.2f}")
            print(f"push: berth/docker = {statistics.median(pushes) / statistics.median(dpush):.2f}")
    finally:
        if dockerd:
            dockerd.send_signal(signal.SIGTERM)
            dockerd.wait()
        for r in regs:
            r.kill()
            r.wait()
        d.send_signal(signal.SIGTERM)
        d.wait()
        subprocess.run(["umount", "-R", os.path.join(tmp, "docker")], stderr=subprocess.DEVNULL)
        de = f"/run/drb-{os.getpid()}"
        if os.path.isdir(de):
            subprocess.run(["umount", "-R", de], stderr=subprocess.DEVNULL)
            shutil.rmtree(de, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        for h in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", h, f"berth-rbench-{os.getpid()}")
            if os.path.isdir(p):
                os.rmdir(p)


if __name__ == "__main__":
    main()
