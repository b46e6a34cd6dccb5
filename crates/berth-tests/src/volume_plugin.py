# A legacy Docker volume plugin for the tests: Docker's plugin protocol (JSON over
# HTTP on a unix socket), volumes as directories under ROOT, every call logged as a
# JSON line to LOG so that the test can see what berthd asked. With the option
# `tmpfs`, a volume is a tmpfs the plugin mounts (it needs CAP_SYS_ADMIN), holding
# a file `.made-by-plugin`: what a managed plugin mounts must reach the host.
# Hostile answers, for the tests of berth's defences: `answer=PATH` makes Mount and
# Path answer PATH; `link=TARGET` makes the volume a symbolic link to TARGET; the
# environment variable SOCKET_LINK=PATH puts a link to PATH where its socket should
# be (and serves on SOCKET.real).
# usage: python3 volume_plugin.py SOCKET ROOT LOG
import ctypes, http.server, json, os, socketserver, sys

sock, root, log = sys.argv[1:4]
volumes = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = json.loads(body or b"{}")
        method = self.path.lstrip("/")
        with open(log, "a") as f:
            f.write(json.dumps({"method": method, "req": req}) + "\n")
        name = req.get("Name", "")
        path = os.path.join(root, name)
        if method == "Plugin.Activate":
            out = {"Implements": ["VolumeDriver"]}
        elif method == "VolumeDriver.Create":
            volumes[name] = req.get("Opts") or {}
            if "link" in volumes[name]:
                os.symlink(volumes[name]["link"], path)
            else:
                os.makedirs(path, exist_ok=True)
            out = {"Err": ""}
            if "tmpfs" in volumes[name]:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.mount(b"plugin", path.encode(), b"tmpfs", 0, b"size=1m") != 0:
                    out = {"Err": "mount: " + os.strerror(ctypes.get_errno())}
                else:
                    open(os.path.join(path, ".made-by-plugin"), "w").close()
        elif method == "VolumeDriver.Remove":
            volumes.pop(name, None)
            out = {"Err": ""}
        elif method in ("VolumeDriver.Mount", "VolumeDriver.Path"):
            answer = (volumes.get(name) or {}).get("answer", path)
            out = {"Mountpoint": answer, "Err": ""} if name in volumes else {"Err": "no such volume " + name}
        elif method == "VolumeDriver.Unmount":
            out = {"Err": ""}
        elif method == "VolumeDriver.Get":
            out = {"Volume": {"Name": name, "Mountpoint": path}, "Err": ""} if name in volumes else {"Err": "no such volume"}
        elif method == "VolumeDriver.List":
            out = {"Volumes": [{"Name": n, "Mountpoint": os.path.join(root, n)} for n in volumes], "Err": ""}
        elif method == "VolumeDriver.Capabilities":
            out = {"Capabilities": {"Scope": "local"}}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("plugin", 0)


if os.path.exists(sock):
    os.unlink(sock)
if os.environ.get("SOCKET_LINK"):
    server = Server(sock + ".real", Handler)
    os.symlink(os.environ["SOCKET_LINK"], sock)
else:
    server = Server(sock, Handler)
server.serve_forever()
