# A legacy Docker authorization plugin for the tests: Docker's plugin protocol on a
# unix socket. It refuses to create privileged containers (it reads the request's
# body) and refuses the answer to `GET /volumes` (it reads the response's status);
# everything else is allowed. Every call is logged as a JSON line to LOG.
# usage: python3 authz_plugin.py SOCKET LOG
import base64, http.server, json, os, socketserver, sys

sock, log = sys.argv[1:3]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        method = self.path.lstrip("/")
        with open(log, "a") as f:
            f.write(json.dumps({"method": method, "uri": req.get("RequestURI"), "status": req.get("ResponseStatusCode")}) + "\n")
        out = {"Allow": True}
        if method == "Plugin.Activate":
            out = {"Implements": ["authz"]}
        elif method == "AuthZPlugin.AuthZReq":
            body = json.loads(base64.b64decode(req["RequestBody"])) if req.get("RequestBody") else {}
            if (body.get("HostConfig") or {}).get("Privileged"):
                out = {"Allow": False, "Msg": "privileged containers are not allowed here"}
        elif method == "AuthZPlugin.AuthZRes":
            if req.get("RequestMethod") == "GET" and req.get("RequestURI", "").split("?")[0].endswith("/volumes"):
                out = {"Allow": False, "Msg": "volume listings are secret"}
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
Server(sock, Handler).serve_forever()
