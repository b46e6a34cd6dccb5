//! The seed documents' compose project (seed 002, adapted to busybox): three
//! services on two networks with the visibility the seed describes (service2
//! sees service1 and service3, which do not see each other), a named volume, bind
//! mounts in both syntaxes, depends_on, a healthcheck, restart, init, published
//! ports and a build with a target. It goes up, is used and goes down with
//! Docker Compose v2, with docker-compose v1 (Debian's) and with `berth compose`.

use berth_tests::{wait_until, Daemon};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

enum Client {
    ComposeV2,
    ComposeV1,
    BerthCompose,
}

fn project(d: &Daemon, name: &str, ports: [u16; 3]) -> std::path::PathBuf {
    let [p1, p2, p3] = ports;
    let compose = format!(
        r#"version: "3.9"
services:
  service1:
    build:
      context: .
      dockerfile: Dockerfile
    image: {name}-one:latest
    init: true
    command: ["httpd", "-f", "-p", "80", "-h", "/site"]
    volumes:
      - ./site:/site
      - type: bind
        source: ./more
        target: /more
    networks:
      - network1
    ports:
      - "{p1}:80"
  service2:
    build:
      context: .
      dockerfile: Dockerfile
      target: stagename
    image: {name}-two:latest
    init: true
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    depends_on:
      - service1
    environment:
      - KEY=value-two
    networks:
      - network1
      - network2
    ports:
      - "{p2}:80"
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "test", "-f", "/www/stage"]
      interval: 1s
      timeout: 5s
      retries: 3
      start_period: 1s
  service3:
    image: busybox
    command: ["sh", "-c", "echo from-three > /data/index.html && exec httpd -f -p 80 -h /data"]
    volumes:
      - volume1:/data
    environment:
      - KEY=value-three
    networks:
      - network2
    ports:
      - "{p3}:80"

volumes:
  volume1:

networks:
  network1:
  network2:
"#
    );
    d.files(
        name,
        &[
            ("docker-compose.yml", compose.as_str()),
            (
                "Dockerfile",
                "FROM busybox AS base\nRUN mkdir -p /www && echo base > /www/stage\n\
                 FROM base AS stagename\nRUN echo stagename > /www/stage\n\
                 FROM base AS final\nRUN echo final > /www/stage\n",
            ),
            ("site/index.html", "from-the-bind-mount\n"),
            ("more/note", "long-syntax-bind\n"),
        ],
    )
}

fn run_seed_project(client: Client, name: &str) {
    let d = Daemon::start();
    d.load_busybox();
    let ports = [free_port(), free_port(), free_port()];
    let dir = project(&d, name, ports);
    let compose = |args: &[&str]| {
        let mut cmd = match client {
            Client::ComposeV2 => {
                let mut c = std::process::Command::new(berth_tests::DOCKER);
                c.args(["compose", "-p", name]);
                c
            }
            Client::ComposeV1 => {
                let mut c = std::process::Command::new("/usr/bin/docker-compose");
                c.args(["-p", name]);
                c
            }
            Client::BerthCompose => {
                let mut c = std::process::Command::new(berth_tests::bin("berth"));
                c.args(["compose", "-p", name]);
                c
            }
        };
        cmd.args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
            .env_remove("BERTH_HOST");
        berth_tests::run(cmd, None)
    };
    let o = compose(&["up", "-d", "--build"]);
    assert_eq!(o.code, 0, "{o:?}");
    // Each service answers on its published port: the bind mount, the target
    // stage of the build, the named volume.
    for (port, want) in [
        (ports[0], "from-the-bind-mount"),
        (ports[1], "stagename"),
        (ports[2], "from-three"),
    ] {
        wait_until(&format!("port {port}"), || {
            http_get(
                port,
                if want == "stagename" {
                    "/stage"
                } else {
                    "/index.html"
                },
            )
            .is_some_and(|b| b.contains(want))
        });
    }
    let id = |svc: &str| {
        let o = compose(&["ps", "-q", svc]);
        o.ok().trim().to_string()
    };
    let (one, two, three) = (id("service1"), id("service2"), id("service3"));
    let exec = |c: &str, script: &str| d.docker(&["exec", c, "sh", "-c", script]);
    let reach = |from: &str, to: &str| {
        exec(
            from,
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {to} 80 | grep -q 200 && echo yes || echo no"),
        )
        .ok()
        .trim()
        .to_string()
    };
    // The seed's visibility: service2 sees both, 1 and 3 not each other.
    assert_eq!(reach(&two, "service1"), "yes");
    assert_eq!(reach(&two, "service3"), "yes");
    assert_eq!(reach(&one, "service3"), "no");
    assert_eq!(reach(&three, "service1"), "no");
    // init, environment, the long-syntax bind, restart, health.
    assert!(exec(&one, "tr '\\0' ' ' < /proc/1/cmdline")
        .ok()
        .starts_with("/sbin/docker-init -- httpd"));
    assert_eq!(exec(&two, "echo $KEY").ok(), "value-two\n");
    assert_eq!(exec(&one, "cat /more/note").ok(), "long-syntax-bind\n");
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", &two])
            .ok(),
        "unless-stopped\n"
    );
    wait_until("service2 healthy", || {
        d.docker(&["inspect", "-f", "{{.State.Health.Status}}", &two])
            .stdout
            == "healthy\n"
    });
    // depends_on: service1 started first.
    let started = |c: &str| {
        d.docker(&["inspect", "-f", "{{.State.StartedAt}}", c])
            .ok()
            .trim()
            .to_string()
    };
    assert!(
        started(&one) <= started(&two),
        "{} > {}",
        started(&one),
        started(&two)
    );
    // Down: the containers and networks go, the named volume stays until -v.
    let o = compose(&["down", "-t", "1"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
    let nets = d
        .docker(&["network", "ls", "--format", "{{.Name}}"])
        .ok()
        .to_string();
    assert!(
        !nets.contains("network1") && !nets.contains("network2"),
        "{nets}"
    );
    let vols = d.docker(&["volume", "ls", "-q"]).ok().to_string();
    assert!(vols.contains("volume1"), "{vols}");
    let o = compose(&["down", "-v"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!d.docker(&["volume", "ls", "-q"]).ok().contains("volume1"));
}

#[test]
fn seed_project_with_compose_v2() {
    run_seed_project(Client::ComposeV2, "seedtwo");
}

#[test]
fn seed_project_with_compose_v1() {
    run_seed_project(Client::ComposeV1, "seedone");
}

#[test]
fn seed_project_with_berth_compose() {
    run_seed_project(Client::BerthCompose, "seedberth");
}
