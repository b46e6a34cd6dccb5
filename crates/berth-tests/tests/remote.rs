//! berthd from afar: TCP with mutual TLS for the docker CLI (flags, variables,
//! a docker context) and `berth`; clients without a certificate of the CA, with
//! one of another CA, or speaking plain HTTP are refused at the TLS layer; and
//! berthd will not listen off loopback without --tlsverify.

use berth_tests::{bin, Daemon};
use std::path::{Path, PathBuf};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1, a client certificate of that CA
    /// (in `client/`, the docker CLI's file names) and one of another CA (`rogue/`).
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            let cert = p.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("berth test CA");
        let (rogue_cert, rogue_key) = ca("another CA");
        let write = |p: &str, v: String| {
            let f = dir.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, v).unwrap();
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names = vec![
            rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()),
            rcgen::SanType::DnsName("localhost".try_into().unwrap()),
        ];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        write("server/ca.pem", ca_cert.pem());
        write("server/cert.pem", cert.pem());
        write("server/key.pem", key.serialize_pem());
        for (sub, (c, k)) in [
            ("client", (&ca_cert, &ca_key)),
            ("rogue", (&rogue_cert, &rogue_key)),
        ] {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "client");
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let cert = p.signed_by(&key, c, k).unwrap();
            write(&format!("{sub}/ca.pem"), ca_cert.pem());
            write(&format!("{sub}/cert.pem"), cert.pem());
            write(&format!("{sub}/key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tls_flags(dir: &Path) -> Vec<String> {
    vec![
        "--tlsverify".into(),
        "--tlscacert".into(),
        dir.join("ca.pem").display().to_string(),
        "--tlscert".into(),
        dir.join("cert.pem").display().to_string(),
        "--tlskey".into(),
        dir.join("key.pem").display().to_string(),
    ]
}

#[test]
fn the_docker_cli_and_berth_over_tcp_with_mutual_tls() {
    let pki = Pki::new();
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let mut extra = vec!["-H".to_string(), tcp.clone()];
    extra.extend(tls_flags(&pki.path("server")));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let d = Daemon::start_with(&extra);
    d.load_busybox();
    let client = pki.path("client");
    // Flags.
    let mut args = tls_flags(&client);
    args.extend(["-H", &tcp, "run", "--rm", "busybox", "echo", "over tls"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(d.docker_env(&[], &args).ok(), "over tls\n");
    // DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
    let env = [
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", client.to_str().unwrap()),
    ];
    let o = d.docker_env(&env, &["-H", &tcp, "version", "--format", "{{.Server.Os}}"]);
    assert_eq!(o.ok(), "linux\n");
    // A docker context.
    let ctx = format!(
        "host={tcp},ca={0}/ca.pem,cert={0}/cert.pem,key={0}/key.pem",
        client.display()
    );
    d.docker(&["context", "create", "remote", "--docker", &ctx])
        .ok();
    let o = d.docker(&["--context", "remote", "run", "--rm", "-i", "busybox", "cat"]);
    assert_eq!(o.code, 0, "{o:?}");
    // berth: flags, variables, an attached stdin through TLS.
    let berth = |env: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>| {
        let mut c = std::process::Command::new(bin("berth"));
        c.args(args)
            .envs(env.iter().copied())
            .env_remove("BERTH_HOST")
            .env_remove("DOCKER_HOST");
        berth_tests::run(c, stdin)
    };
    let mut args = tls_flags(&client);
    args.extend(
        [
            "-H",
            &tcp,
            "run",
            "--rm",
            "busybox",
            "echo",
            "berth over tls",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(berth(&[], &args, None).ok(), "berth over tls\n");
    let o = berth(
        &env,
        &["-H", &tcp, "run", "--rm", "-i", "busybox", "cat"],
        Some(b"piped\n"),
    );
    assert_eq!(o.ok(), "piped\n");
    // berth with the docker CLI's context: named, then made current.
    let cfg = d.root.path().join("docker-config");
    let cfg_env = [("DOCKER_CONFIG", cfg.to_str().unwrap())];
    let o = berth(
        &cfg_env,
        &[
            "--context",
            "remote",
            "run",
            "--rm",
            "busybox",
            "echo",
            "through a context",
        ],
        None,
    );
    assert_eq!(o.ok(), "through a context\n");
    // A plugin run through berth with --context reads that context itself.
    let o = berth(
        &cfg_env,
        &["--context", "remote", "compose", "ls", "-a"],
        None,
    );
    assert!(o.ok().starts_with("NAME"), "{o:?}");
    d.docker(&["context", "use", "remote"]).ok();
    let o = berth(&cfg_env, &["images", "--format", "{{.Repository}}"], None);
    assert_eq!(o.ok(), "busybox\n");
    d.docker(&["context", "use", "default"]).ok();
    let o = berth(&cfg_env, &["--context", "nosuch", "ps"], None);
    assert!(
        o.stderr.contains("context \"nosuch\" does not exist"),
        "{o:?}"
    );
    // Refused at the TLS layer: no certificate, another CA's, plain HTTP.
    let o = d.docker_env(
        &[],
        &[
            "--tlsverify",
            "--tlscacert",
            client.join("ca.pem").to_str().unwrap(),
            "-H",
            &tcp,
            "ps",
        ],
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("certificate required"), "{o:?}");
    let rogue = pki.path("rogue");
    let mut args = tls_flags(&rogue);
    args.extend(["-H", &tcp, "ps"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = d.docker_env(&[], &args);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("tls: "), "{o:?}");
    let o = berth(&[], &["-H", &tcp, "ps"], None);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("Are you trying to connect to a TLS-enabled daemon without TLS?"),
        "{o:?}"
    );
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP reached the API: {got:?}"
    );
    assert!(d.log().contains("TLS handshake refused"), "{}", d.log());
}

#[test]
fn berthd_will_not_listen_off_loopback_without_tlsverify() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--tls"][..]] {
        let port = free_port();
        let o = std::process::Command::new(bin("berthd"))
            .args(["-H", &format!("tcp://0.0.0.0:{port}")])
            .args(extra)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!(
                "refusing to listen on tcp://0.0.0.0:{port} without --tlsverify"
            )),
            "{err}"
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(!dir.path().join("data").exists(), "nothing is made");
    }
}

/// A private sshd on 127.0.0.1 for one test: a host key and a user key made
/// here, and sessions whose DOCKER_HOST is the test daemon's socket (never the
/// machine's default one) and whose PATH finds `berth` and `docker`.
struct Sshd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sshd {
    fn start(d: &Daemon) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let p = |f: &str| dir.path().join(f).display().to_string();
        let keygen = |f: &str| {
            let mut c = std::process::Command::new("ssh-keygen");
            c.args(["-q", "-t", "ed25519", "-N", "", "-f", &p(f)]);
            berth_tests::run(c, None).ok();
        };
        keygen("host_key");
        keygen("id");
        std::fs::copy(p("id.pub"), p("authorized_keys")).unwrap();
        let port = free_port();
        let berth_dir = bin("berth").parent().unwrap().display().to_string();
        std::fs::write(
            p("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 StrictModes no\nUsePAM no\nSetEnv DOCKER_HOST={} PATH={berth_dir}:/usr/local/bin:/usr/bin:/bin\n",
                p("host_key"),
                p("authorized_keys"),
                p("sshd.pid"),
                d.host()
            ),
        )
        .unwrap();
        // The client side: this key, no known_hosts of the machine's.
        std::fs::write(
            p("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                p("id")
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        let wrapper = dir.path().join("bin/ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                p("ssh_config")
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = std::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f", &p("sshd_config")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sshd (Debian's openssh-server)");
        berth_tests::wait_until("sshd listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Sshd { child, dir, port }
    }

    /// PATH for a client: the ssh wrapper first.
    fn path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_docker_cli_and_berth_over_ssh() {
    let d = Daemon::start();
    d.load_busybox();
    let sshd = Sshd::start(&d);
    let host = format!("ssh://root@127.0.0.1:{}", sshd.port);
    let path = sshd.path();
    // The docker CLI runs `docker system dial-stdio` on the remote side (with a
    // PATH that finds the test's ssh wrapper).
    let mut c = std::process::Command::new(berth_tests::DOCKER);
    c.args(["-H", &host, "run", "--rm", "busybox", "echo", "hi"])
        .env("PATH", &path)
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .env_remove("DOCKER_HOST");
    assert_eq!(berth_tests::run(c, None).ok(), "hi\n");
    // berth runs `berth system dial-stdio` there; an attached stdin goes through.
    let berth = |args: &[&str], stdin: Option<&[u8]>| {
        let mut c = std::process::Command::new(bin("berth"));
        c.args(args)
            .env("PATH", &path)
            .env_remove("BERTH_HOST")
            .env_remove("DOCKER_HOST");
        berth_tests::run(c, stdin)
    };
    assert_eq!(
        berth(&["-H", &host, "run", "--rm", "busybox", "echo", "hi"], None).ok(),
        "hi\n"
    );
    assert_eq!(
        berth(
            &["-H", &host, "run", "--rm", "-i", "busybox", "cat"],
            Some(b"through ssh\n")
        )
        .ok(),
        "through ssh\n"
    );
    // A host that refuses: ssh's words, and no hang.
    let o = berth(&["-H", "ssh://nobody@127.0.0.1:1", "ps"], None);
    assert_ne!(o.code, 0);
}
