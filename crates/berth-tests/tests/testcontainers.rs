//! testcontainers-python against berthd: containers with wait strategies, exec,
//! published ports reached from the host, and its Ryuk reaper (an image made
//! here from busybox and a reaper speaking Ryuk's protocol, src/ryuk.c) removing
//! what a test process left behind when that process dies.

use berth_tests::Daemon;
use std::io::{BufRead, BufReader};

const SCRIPT: &str = r#"
import sys, time, urllib.request
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs
with DockerContainer("busybox").with_command("sh -c 'echo ready; sleep 60'") as c:
    wait_for_logs(c, "ready")
    print("exec:", c.exec("echo hi").output.decode().strip(), flush=True)
web = (DockerContainer("busybox")
       .with_command("sh -c 'mkdir /www && echo served > /www/index.html && httpd -f -p 80 -h /www'")
       .with_exposed_ports(80))
with web:
    url = f"http://{web.get_container_host_ip()}:{web.get_exposed_port(80)}/index.html"
    for _ in range(50):
        try:
            print("http:", urllib.request.urlopen(url, timeout=2).read().decode().strip(), flush=True)
            break
        except OSError:
            time.sleep(0.1)
left = DockerContainer("busybox").with_command("sleep 300").start()
print("left:", left.get_wrapped_container().id, flush=True)
time.sleep(300)
"#;

#[test]
fn testcontainers_python_runs_and_its_reaper_cleans_up_after_a_dead_session() {
    let d = Daemon::start();
    d.load_busybox();
    // The reaper image testcontainers asks for, made locally.
    let ryuk_image = {
        let mut c = std::process::Command::new("python3");
        c.args([
            "-c",
            "from testcontainers.core.config import testcontainers_config as c; print(c.ryuk_image)",
        ]);
        berth_tests::run(c, None).ok().trim().to_string()
    };
    let ctx = d.files(
        "ryuk",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY ryuk /ryuk\nENTRYPOINT [\"/ryuk\"]\n",
        )],
    );
    std::fs::write(ctx.join("ryuk.c"), include_str!("../src/ryuk.c")).unwrap();
    let mut gcc = std::process::Command::new("gcc");
    gcc.args(["-static", "-O1", "-o"])
        .arg(ctx.join("ryuk"))
        .arg(ctx.join("ryuk.c"));
    berth_tests::run(gcc, None).ok();
    d.docker_env(
        &[("DOCKER_BUILDKIT", "0")],
        &["build", "-q", "-t", &ryuk_image, ctx.to_str().unwrap()],
    )
    .ok();
    // The test's session: its reaper gets this daemon's socket, never the
    // machine's default one.
    let mut py = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .env("DOCKER_HOST", d.host())
        .env("TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE", &d.socket)
        .env("RYUK_RECONNECTION_TIMEOUT", "1s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line from the script").unwrap();
    assert_eq!(next(), "exec: hi");
    assert_eq!(next(), "http: served");
    let left = next();
    let left = left
        .strip_prefix("left: ")
        .expect("the left container")
        .to_string();
    let ps = d.docker(&["ps", "--format", "{{.Image}}"]).ok().to_string();
    assert!(ps.contains(&ryuk_image), "the reaper runs: {ps}");
    // The session dies without cleaning up: the reaper removes what it labelled.
    py.kill().unwrap();
    py.wait().unwrap();
    berth_tests::wait_until("the reaper removed the container left behind", || {
        d.docker(&["ps", "-aq", "--no-trunc"])
            .ok()
            .trim()
            .is_empty()
    });
    let o = d.docker(&["inspect", &left]);
    assert_ne!(o.code, 0, "{o:?}");
}
