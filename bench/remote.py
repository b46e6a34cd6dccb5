#!/usr/bin/env python3
"""`docker run --rm busybox true` over TCP with mutual TLS against the same over
the unix socket (method and results: docs/BENCHMARKS.md).

One berthd (release build) listening on both a unix socket and
tcp://127.0.0.1:PORT with --tlsverify (a CA, a server certificate for 127.0.0.1
and a client certificate made here with openssl); the docker CLI runs
`docker run --rm --network none busybox true` through each, interleaved run by
run, N times: median and p90, and the ratio. Each docker CLI run opens its own
connections, so the TLS handshakes are in every figure.
Run as root from the repository: bench/remote.py [--runs N]
"""
import argparse, os, shutil, signal, socket, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import BIN, DOCKER, ROOT, summary, timed, wait_ready  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def certs(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("cert", "extendedKeyUsage=clientAuth")):
        key = "server-key.pem" if name == "server" else "key.pem"
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        open(os.path.join(d, f"{name}.ext"), "w").write(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-remote-", dir="/tmp")
    exec_root = f"/run/brm-{os.getpid()}"
    d = None
    try:
        certs(tmp)
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        p = port.getsockname()[1]
        port.close()
        sock = os.path.join(tmp, "berth.sock")
        notify_path = os.path.join(tmp, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        cfg = os.path.join(tmp, "daemon.json")
        open(cfg, "w").write("{}")
        d = subprocess.Popen([os.path.join(BIN, "berthd"), "-H", f"unix://{sock}", "-H", f"tcp://127.0.0.1:{p}",
                              "--tlsverify", "--tlscacert", os.path.join(tmp, "ca.pem"),
                              "--tlscert", os.path.join(tmp, "server.pem"), "--tlskey", os.path.join(tmp, "server-key.pem"),
                              "--data-root", os.path.join(tmp, "data"), "--exec-root", exec_root, "--config-file", cfg,
                              "--cgroup-parent", f"berth-remote-{os.getpid()}", "--bridge", "none"],
                             env=dict(os.environ, NOTIFY_SOCKET=notify_path), stderr=open(os.path.join(tmp, "log"), "w"))
        wait_ready(notify)
        unix = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(tmp, "dc"))
        tls = dict(os.environ, DOCKER_HOST=f"tcp://127.0.0.1:{p}", DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=tmp,
                   DOCKER_CONFIG=os.path.join(tmp, "dc"))
        tar = os.path.join(tmp, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/mkimage-busybox.sh"), tar], check=True)
        subprocess.run([DOCKER, "load", "-q", "-i", tar], env=unix, check=True, stdout=subprocess.DEVNULL)
        run = [DOCKER, "run", "--rm", "--network", "none", "busybox", "true"]
        timed(run, unix, 3)
        timed(run, tls, 3)
        ut, tt = [], []
        for _ in range(args.runs):
            ut += timed(run, unix, 1)
            tt += timed(run, tls, 1)
        u = summary("docker run --rm, unix socket", ut)
        t = summary("docker run --rm, tcp + mutual TLS", tt)
        print(f"TLS / unix: {t / u:.2f}x ({t - u:+.1f} ms)")
    finally:
        if d:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)


if __name__ == "__main__":
    main()
