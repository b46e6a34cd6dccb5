#!/usr/bin/env python3
"""Rootless berthd against root berthd and root dockerd (method and results:
docs/BENCHMARKS.md).

Starts, side by side on this machine (release build): a berthd as root, a
rootless berthd as the user berthrl (scripts/deps.sh makes it), and with
--docker Debian's dockerd 20.10 as root; loads the busybox image into each and
times `docker run --rm busybox true` (default network: a bridge and a veth per
container) and `docker run --rm --network none busybox true`, interleaved, N
times each: median and p90.
Run as root from the repository: bench/rootless.py [--runs N] [--docker]
"""
import argparse, os, pwd, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import BIN, DOCKER, ROOT, summary, timed, wait_ready  # noqa: E402

USER = "berthrl"


def start_berthd(tmp, name, rootless):
    sock = os.path.join(tmp, f"{name}.sock")
    notify_path = os.path.join(tmp, f"{name}.notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    os.chmod(notify_path, 0o777)
    cfg = os.path.join(tmp, f"{name}.json")
    open(cfg, "w").write("{}")
    exec_root = f"/run/brl{name[0]}-{os.getpid()}"
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    preexec = None
    if rootless:
        u = pwd.getpwnam(USER)
        for d in (os.path.join(tmp, "xdg"), os.path.join(tmp, "home"), exec_root):
            os.makedirs(d, exist_ok=True)
            os.chown(d, u.pw_uid, u.pw_gid)
        env.update(XDG_RUNTIME_DIR=os.path.join(tmp, "xdg"), HOME=os.path.join(tmp, "home"))

        def preexec():
            os.setgroups([])
            os.setgid(u.pw_gid)
            os.setuid(u.pw_uid)
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, name),
                          "--exec-root", exec_root, "--config-file", cfg,
                          "--cgroup-parent", f"berth-rl-{name}-{os.getpid()}", "--bridge", f"brl{name[0]}{os.getpid() % 10000}",
                          "--default-address-pool", f"base=10.{200 + rootless}.0.0/16,size=24"],
                         env=env, preexec_fn=preexec, stderr=open(os.path.join(tmp, f"{name}.log"), "w"))
    wait_ready(notify)
    return d, exec_root, dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-rootless-", dir="/tmp")
    os.chmod(tmp, 0o755)
    # The rootless berthd makes its socket and data root here.
    u = pwd.getpwnam(USER)
    os.chown(tmp, u.pw_uid, u.pw_gid)
    procs, dirs = [], []
    try:
        root, rdir, renv = start_berthd(tmp, "root", False)
        procs.append(root)
        dirs.append(rdir)
        rl, ldir, lenv = start_berthd(tmp, "less", True)
        procs.append(rl)
        dirs.append(ldir)
        envs = [("berthd (root)", renv), ("berthd (rootless)", lenv)]
        if args.docker:
            dsock = os.path.join(tmp, "docker.sock")
            ddir = f"/run/brld-{os.getpid()}"
            dirs.append(ddir)
            dockerd = subprocess.Popen(["dockerd", "-H", f"unix://{dsock}", "--data-root", os.path.join(tmp, "docker"),
                                        "--exec-root", ddir, "--pidfile", os.path.join(tmp, "dockerd.pid"),
                                        "--bridge", "none", "--iptables=false", "--ip6tables=false"],
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
            procs.append(dockerd)
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
            for _ in range(300):
                if subprocess.run([DOCKER, "version"], env=denv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            envs.append(("dockerd (root)", denv))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        for _, env in envs:
            subprocess.run([DOCKER, "load", "-q", "-i", tar], env=env, check=True, stdout=subprocess.DEVNULL)
        for net in (["--network", "none"], []):
            run = [DOCKER, "run", "--rm", *net, "busybox", "true"]
            if not net and args.docker:
                # dockerd here has no bridge (--bridge none): only --network none compares.
                envs_now = envs[:2]
            else:
                envs_now = envs
            times = {n: [] for n, _ in envs_now}
            for _, env in envs_now:
                timed(run, env, 3)
            for _ in range(args.runs):
                for n, env in envs_now:
                    times[n] += timed(run, env, 1)
            what = "--network none" if net else "default network"
            med = {n: summary(f"docker run --rm ({what}), {n}", t) for n, t in times.items()}
            print(f"  rootless / root berthd: {med['berthd (rootless)'] / med['berthd (root)']:.2f}x")
            if "dockerd (root)" in med:
                print(f"  rootless berthd / root dockerd: {med['berthd (rootless)'] / med['dockerd (root)']:.2f}x")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
