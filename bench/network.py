#!/usr/bin/env python3
"""berth's networking benchmarks (method and results: docs/BENCHMARKS.md).

Starts a private berthd (release build) with its own bridge and address pool, loads
the busybox test image, and measures:
  - `berth run --rm busybox true` on the default bridge against `--network none`:
    what a container's network (namespace, veth pair, address, route) adds;
  - 50 containers started in parallel on one user-defined network: wall time, and
    that all 50 addresses are distinct and resolve from a container;
  - a published port: nftables DNAT (berth's choice) against a userland proxy in
    the style of docker-proxy (target/.../tcp-proxy), on 127.0.0.1: latency of
    one HTTP request on a new connection, and bulk throughput;
  - with --docker: `docker run --rm` on dockerd's default bridge against
    `--network none` (Debian's docker.io, its own root, --iptables=false so that
    the host's firewall is left alone).
Run as root from the repository: bench/network.py [--runs N] [--docker]
"""
import argparse, os, random, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import BIN, DOCKER, ROOT, summary, timed, wait_ready, rss_kb  # noqa: E402


def http_once(port, path="/index.html"):
    t = time.perf_counter_ns()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    n = 0
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        n += len(b)
    s.close()
    return (time.perf_counter_ns() - t) / 1e6, n


def wait_http(port):
    for _ in range(200):
        try:
            http_once(port)
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing answers on 127.0.0.1:{port}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-netbench-", dir="/tmp")
    exec_root = f"/run/bn-{os.getpid()}"
    sock = os.path.join(tmp, "berth.sock")
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    cfg = os.path.join(tmp, "daemon.json")
    open(cfg, "w").write("{}")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    bridge = f"bn{os.getpid() % 100000}"
    pool = f"base=10.{random.randint(64, 240)}.0.0/16,size=24"
    d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "--data-root", os.path.join(tmp, "data"),
                          "--exec-root", exec_root, "--config-file", cfg, "--cgroup-parent", f"berth-nbench-{os.getpid()}",
                          "--bridge", bridge, "--default-address-pool", pool],
                         env=env, stderr=open(os.path.join(tmp, "berthd.log"), "w"))
    berth = os.path.join(BIN, "berth")
    dockerd = proxy = None
    try:
        wait_ready(notify)
        cenv = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([berth, "load", "-q", "-i", tar], env=cenv, check=True)

        run = [berth, "run", "--rm", "busybox", "true"]
        none = [berth, "run", "--rm", "--network", "none", "busybox", "true"]
        timed(run, cenv, 5)
        timed(none, cenv, 5)
        # Interleaved, so that drift on the machine hits both alike.
        a, b = [], []
        for _ in range(args.runs):
            a += timed(run, cenv, 1)
            b += timed(none, cenv, 1)
        ma = summary("berth run --rm busybox true (default bridge)", a)
        mb = summary("berth run --rm --network none busybox true", b)
        print(f"bridge costs {ma - mb:+.1f} ms over none (median against median)")

        subprocess.run([berth, "network", "create", "--subnet", "10.251.90.0/24", "fifty"], env=cenv, check=True,
                       stdout=subprocess.DEVNULL)
        names = [f"p{i:02}" for i in range(50)]
        t = time.perf_counter()
        procs = [subprocess.Popen([berth, "run", "-d", "--name", n, "--network", "fifty", "busybox", "sleep", "1000"],
                                  env=cenv, stdout=subprocess.DEVNULL) for n in names]
        if any(p.wait() != 0 for p in procs):
            sys.exit("a parallel start failed")
        wall = (time.perf_counter() - t) * 1000
        import json
        eps = json.loads(subprocess.run([berth, "network", "inspect", "-f", "{{json .Containers}}", "fifty"],
                                        env=cenv, capture_output=True, text=True, check=True).stdout)
        out = [e["IPv4Address"] for e in eps.values()]
        script = "; ".join(f"nslookup {n} >/dev/null || echo missing" for n in names)
        missing = subprocess.run([berth, "exec", "p00", "sh", "-c", script], env=cenv, capture_output=True, text=True).stdout
        print(f"50 parallel starts on one network: {wall:.0f} ms wall, {len(set(out))} distinct addresses of {len(out)}, "
              f"{50 - missing.count('missing')}/50 names resolve from p00")
        subprocess.run([berth, "rm", "-f"] + names, env=cenv, stdout=subprocess.DEVNULL, check=True)

        # Published port: DNAT against a userland proxy, both on 127.0.0.1.
        port = free_port()
        web = subprocess.run([berth, "run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
                              "mkdir -p /www && echo hi > /www/index.html && dd if=/dev/zero of=/www/big bs=1M count=64 2>/dev/null"
                              " && exec httpd -f -p 80 -h /www"], env=cenv, capture_output=True, text=True, check=True).stdout.strip()
        ip = subprocess.run([berth, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", web], env=cenv, capture_output=True,
                            text=True, check=True).stdout.strip()
        pport = free_port()
        proxy = subprocess.Popen([os.path.join(BIN, "tcp-proxy"), f"127.0.0.1:{pport}", f"{ip}:80"])
        wait_http(port)
        wait_http(pport)
        for name, p in [("nftables DNAT", port), ("userland proxy", pport)]:
            for _ in range(20):
                http_once(p)
            lat = [http_once(p)[0] for _ in range(args.runs * 4)]
            summary(f"GET /index.html on a new connection, {name}", lat)
        for name, p in [("nftables DNAT", port), ("userland proxy", pport)]:
            rates = []
            for _ in range(5):
                ms, n = http_once(p, "/big")
                rates.append(n / (ms / 1000) / 1e6)
            print(f"64 MB download, {name}: median {statistics.median(rates):.0f} MB/s")
        print(f"userland proxy RSS after the runs: {rss_kb(proxy.pid)} kB (DNAT: no process)")
        subprocess.run([berth, "rm", "-f", web], env=cenv, stdout=subprocess.DEVNULL, check=True)

        if args.docker:
            droot = os.path.join(tmp, "docker")
            dsock = os.path.join(tmp, "docker.sock")
            dbridge = f"dn{os.getpid() % 100000}"
            subprocess.run(["ip", "link", "add", dbridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", "10.252.77.1/24", "dev", dbridge], check=True)
            subprocess.run(["ip", "link", "set", dbridge, "up"], check=True)
            dockerd = subprocess.Popen(["dockerd", "-H", f"unix://{dsock}", "--data-root", droot, "--exec-root", f"/run/dn-{os.getpid()}",
                                        "--pidfile", os.path.join(tmp, "dockerd.pid"), "--bridge", dbridge, "--iptables=false",
                                        "--ip6tables=false"], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dockerd.log"), "w"))
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
            for _ in range(300):
                if subprocess.run([DOCKER, "version"], env=denv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            subprocess.run([DOCKER, "load", "-q", "-i", tar], env=denv, check=True, stdout=subprocess.DEVNULL)
            drun = [DOCKER, "run", "--rm", "busybox", "true"]
            dnone = [DOCKER, "run", "--rm", "--network", "none", "busybox", "true"]
            timed(drun, denv, 3)
            a, b = [], []
            for _ in range(max(10, args.runs // 2)):
                a += timed(drun, denv, 1)
                b += timed(dnone, denv, 1)
            ma = summary("docker run --rm busybox true (dockerd, bridge)", a)
            mb = summary("docker run --rm --network none busybox true (dockerd)", b)
            print(f"dockerd: bridge costs {ma - mb:+.1f} ms over none")
    finally:
        if proxy:
            proxy.kill()
            proxy.wait()
        if dockerd:
            dockerd.send_signal(signal.SIGTERM)
            dockerd.wait()
            subprocess.run(["ip", "link", "del", f"dn{os.getpid() % 100000}"], stderr=subprocess.DEVNULL)
        d.send_signal(signal.SIGTERM)
        d.wait()
        subprocess.run(["umount", "-R", os.path.join(tmp, "docker")], stderr=subprocess.DEVNULL)
        docker_exec = f"/run/dn-{os.getpid()}"
        if os.path.isdir(docker_exec):
            subprocess.run(["umount", "-R", docker_exec], stderr=subprocess.DEVNULL)
            shutil.rmtree(docker_exec, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        for h in os.listdir("/sys/fs/cgroup"):
            p = os.path.join("/sys/fs/cgroup", h, f"berth-nbench-{os.getpid()}")
            if os.path.isdir(p):
                os.rmdir(p)


if __name__ == "__main__":
    main()
