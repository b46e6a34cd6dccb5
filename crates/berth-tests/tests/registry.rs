//! Pull and push against Debian's docker-registry on 127.0.0.1 (plain HTTP:
//! loopback registries are insecure by default, as in Docker), through the real
//! docker CLI, berth and skopeo: round trips by tag and digest, platform choice from
//! an index, corrupt blobs, broken downloads, logins, mirrors, shared layers.

use berth_tests::{Daemon, TestRegistry};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

fn id_of(d: &Daemon, image: &str) -> String {
    d.docker(&["inspect", "-f", "{{.Id}}", image])
        .ok()
        .trim()
        .to_string()
}

fn skopeo(args: &[&str]) {
    let o = Command::new("skopeo")
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn docker_push_rmi_pull_by_tag_and_digest_keeps_the_image() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let id = id_of(&d, "busybox");
    let name = format!("{}/team/bb:v1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    let o = d.docker(&["push", &name]);
    let out = o.ok().to_string();
    assert!(out.contains("Pushed"), "{out}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("v1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the digest is printed")
        .to_string();
    // Again: every layer is already there.
    assert!(d
        .docker(&["push", &name])
        .ok()
        .contains("Layer already exists"));
    d.docker(&["rmi", &name, "busybox"]).ok();
    assert_eq!(d.docker(&["images", "-q"]).ok(), "");
    let o = d.docker(&["pull", &name]);
    assert!(o.ok().contains(&format!("Digest: {digest}")), "{o:?}");
    assert_eq!(id_of(&d, &name), id);
    let o = d.docker(&["inspect", "-f", "{{json .RepoDigests}}", &name]);
    assert!(
        o.ok().contains(&format!("{}/team/bb@{digest}", reg.host())),
        "{o:?}"
    );
    d.docker(&["rmi", &name]).ok();
    let by_digest = format!("{}/team/bb@{digest}", reg.host());
    d.docker(&["pull", &by_digest]).ok();
    assert_eq!(id_of(&d, &by_digest), id);
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &by_digest,
            "echo",
            "ran"
        ])
        .ok(),
        "ran\n"
    );
    // What is not there is named.
    let o = d.docker(&["pull", &format!("{}/team/bb:nope", reg.host())]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("not found: manifest unknown"), "{o:?}");
}

/// Removing a name removes that name only: the repository's last tag takes its
/// digest references with it (as Docker does), and removing a digest reference
/// never takes another repository's tag or the image.
#[test]
fn rmi_of_one_name_keeps_the_others() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let id = id_of(&d, "busybox");
    let name = format!("{}/keep/bb:1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    d.docker(&["push", &name]).ok();
    d.docker(&["rmi", &name]).ok();
    d.docker(&["pull", &name]).ok();
    let digests = || {
        d.docker(&["inspect", "-f", "{{json .RepoDigests}}", "busybox"])
            .ok()
            .trim()
            .to_string()
    };
    let repo_digest: Vec<String> = serde_json::from_str(&digests()).unwrap();
    assert_eq!(repo_digest.len(), 1, "{repo_digest:?}");
    // The repository's last tag: its digest reference goes with it.
    let o = d.docker(&["rmi", &name]);
    assert!(
        o.ok().contains(&format!("Untagged: {}", repo_digest[0])),
        "{o:?}"
    );
    assert_eq!(digests(), "[]");
    assert_eq!(id_of(&d, "busybox"), id);
    // By digest: only that reference.
    d.docker(&["pull", &name]).ok();
    let o = d.docker(&["rmi", &repo_digest[0]]);
    assert_eq!(o.ok().trim(), format!("Untagged: {}", repo_digest[0]));
    assert_eq!(id_of(&d, "busybox"), id);
    assert_eq!(id_of(&d, &name), id);
    assert_eq!(digests(), "[]");
    // The last name of all takes the image.
    d.docker(&["rmi", &name, "busybox"]).ok();
    assert_eq!(d.docker(&["images", "-q"]).ok(), "");
}

#[test]
fn berth_push_and_pull_and_run_pulls_what_is_missing() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let id = id_of(&d, "busybox");
    let name = format!("{}/b/bb:1", reg.host());
    d.berth(&["tag", "busybox", &name]).ok();
    let o = d.berth(&["push", &name]);
    assert!(o.ok().contains("1: digest: sha256:"), "{o:?}");
    d.berth(&["rmi", &name, "busybox"]).ok();
    let o = d.berth(&["pull", &name]);
    assert!(o.ok().contains("Pull complete"), "{o:?}");
    assert_eq!(id_of(&d, &name), id);
    d.berth(&["rmi", &name]).ok();
    // run pulls a missing image (progress on stderr), and --pull never does not.
    let o = d.berth(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        &name,
        "true",
    ]);
    assert_ne!(o.code, 0);
    let o = d.berth(&["run", "--rm", "--network", "none", &name, "echo", "pulled"]);
    assert_eq!(o.stdout, "pulled\n");
    assert!(o.stderr.contains("Unable to find image"), "{o:?}");
    // The docker CLI's run does the same through the API.
    d.docker(&["rmi", &name]).ok();
    let o = d.docker(&["run", "--rm", "--network", "none", &name, "echo", "again"]);
    assert_eq!(o.stdout, "again\n", "{o:?}");
}

/// The busybox test image as an OCI layout (tag `bb`), made by skopeo.
fn busybox_layout(d: &Daemon) -> std::path::PathBuf {
    let tar = d.busybox_archive("busybox:latest");
    let layout = d.root.path().join("oci");
    skopeo(&[
        "copy",
        "--quiet",
        &format!("docker-archive:{}", tar.display()),
        &format!("oci:{}:bb", layout.display()),
    ]);
    layout
}

#[test]
fn skopeo_and_berth_interoperate() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    let layout = busybox_layout(&d);
    let dest = format!("docker://{}/from/skopeo:1", reg.host());
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:bb", layout.display()),
        &dest,
    ]);
    let name = format!("{}/from/skopeo:1", reg.host());
    d.berth(&["pull", &name]).ok();
    assert_eq!(
        d.berth(&["run", "--rm", "--network", "none", &name, "echo", "oci"])
            .ok(),
        "oci\n"
    );
    // berth pushes; skopeo sees the digest berth printed.
    let mine = format!("{}/from/berth:2", reg.host());
    d.berth(&["tag", &name, &mine]).ok();
    let o = d.berth(&["push", &mine]);
    let digest = o
        .ok()
        .lines()
        .find_map(|l| l.strip_prefix("2: digest: "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{mine}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
}

/// Writes a blob into an OCI layout; returns its descriptor fields.
fn put_blob(layout: &Path, data: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(data));
    std::fs::write(layout.join("blobs/sha256").join(&hex), data).unwrap();
    (format!("sha256:{hex}"), data.len())
}

#[test]
fn a_multi_platform_index_picks_the_platform() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    let layout = busybox_layout(&d);
    // The layout's one manifest (amd64), and a second one whose config says arm64.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&mdigest)).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    config["architecture"] = "arm64".into();
    let (cdigest, csize) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
    let mut arm = manifest.clone();
    arm["config"]["digest"] = cdigest.into();
    arm["config"]["size"] = csize.into();
    let (adigest, asize) = put_blob(&layout, &serde_json::to_vec(&arm).unwrap());
    let amd = blob(&mdigest);
    let new_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": adigest, "size": asize, "platform": { "architecture": "arm64", "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": amd.len(), "platform": { "architecture": "amd64", "os": "linux" } },
        ],
        "annotations": { "org.opencontainers.image.ref.name": "multi" },
    });
    let (idigest, isize) = put_blob(&layout, &serde_json::to_vec(&new_index).unwrap());
    let top = serde_json::json!({ "schemaVersion": 2, "manifests": [ { "mediaType": "application/vnd.oci.image.index.v1+json", "digest": idigest, "size": isize, "annotations": { "org.opencontainers.image.ref.name": "multi" } } ] });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let name = format!("{}/multi/bb:1", reg.host());
    skopeo(&[
        "copy",
        "--quiet",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{name}"),
    ]);
    d.docker(&["pull", &name]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.Architecture}}", &name])
            .ok()
            .trim(),
        "amd64"
    );
    d.docker(&["rmi", &name]).ok();
    d.docker(&["pull", "--platform", "linux/arm64", &name]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.Architecture}}", &name])
            .ok()
            .trim(),
        "arm64"
    );
    let o = d.docker(&["pull", "--platform", "linux/s390x", &name]);
    assert!(
        o.stderr.contains("no matching manifest for linux/s390x"),
        "{o:?}"
    );
}

#[test]
fn a_corrupt_blob_fails_the_pull_and_leaves_nothing() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/c/bb:1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    d.docker(&["push", &name]).ok();
    let layers: Vec<String> = std::fs::read_dir(d.data_root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    d.docker(&["rmi", &name, "busybox"]).ok();
    // Every layer blob in the registry's storage: same length, other bytes.
    let manifest: serde_json::Value = {
        let o = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{name}"),
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap()
    };
    for l in manifest["layers"].as_array().unwrap() {
        let p = reg.blob_path(l["digest"].as_str().unwrap());
        let mut data = std::fs::read(&p).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        std::fs::write(&p, data).unwrap();
    }
    let o = d.docker(&["pull", &name]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("verification failed")
            || o.stderr.contains("invalid")
            || o.stderr.contains("corrupt"),
        "{o:?}"
    );
    assert_eq!(d.docker(&["images", "-q"]).ok(), "");
    let after: Vec<String> = std::fs::read_dir(d.data_root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        after.len() <= layers.len(),
        "no new layer directory: {after:?}"
    );
    assert_eq!(
        std::fs::read_dir(d.data_root.join("tmp")).unwrap().count(),
        0,
        "nothing staged is left"
    );
}

/// A plain HTTP request's head, byte by byte (what follows stays in the socket);
/// None when the client sends nothing or starts TLS.
fn read_head(client: &mut TcpStream) -> Option<String> {
    let mut first = [0u8; 1];
    if client.peek(&mut first).unwrap_or(0) == 0 || first[0] == 0x16 {
        return None;
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut b).unwrap_or(0) == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(String::from_utf8_lossy(&head).to_string())
}

/// A proxy in front of the registry: counts blob GETs and, when `cut` is set, cuts
/// the first blob download after `cut` bytes of its answer.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

fn proxy(target: u16, cut: Option<usize>) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cut_once = Arc::new(Mutex::new(cut));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let seen = s2.clone();
            let cut_once = cut_once.clone();
            std::thread::spawn(move || {
                let mut client = c;
                // A TLS hello (an HTTPS attempt): this proxy speaks plain HTTP only.
                let Some(text) = read_head(&mut client) else {
                    return;
                };
                let first = text.lines().next().unwrap_or("").to_string();
                let is_blob = first.starts_with("GET ") && first.contains("/blobs/sha256:");
                if is_blob {
                    let range = text
                        .lines()
                        .any(|l| l.to_ascii_lowercase().starts_with("range:"));
                    seen.lock()
                        .unwrap()
                        .push(format!("{first}{}", if range { " RANGE" } else { "" }));
                }
                let mut up = TcpStream::connect(("127.0.0.1", target)).unwrap();
                // One request per connection: the client opens a new one each time.
                let text = text.replace("\r\nConnection: keep-alive", "");
                up.write_all(text.as_bytes()).unwrap();
                // The first blob answer longer than the limit is cut.
                let limit = if is_blob {
                    *cut_once.lock().unwrap()
                } else {
                    None
                };
                let mut sent = 0usize;
                let mut buf = [0u8; 8192];
                loop {
                    let n = match up.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let n = match limit {
                        Some(l) if sent + n > l => l - sent,
                        _ => n,
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                    if limit.is_some_and(|l| sent >= l) && cut_once.lock().unwrap().take().is_some()
                    {
                        break; // cut, once
                    }
                }
            });
        }
    });
    Proxy { port, seen }
}

#[test]
fn a_broken_download_is_resumed() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/r/bb:1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    d.docker(&["push", &name]).ok();
    d.docker(&["rmi", &name, "busybox"]).ok();
    // The layer's answer is cut after 600 kB (headers included).
    let p = proxy(reg.port, Some(600_000));
    let via = format!("127.0.0.1:{}/r/bb:1", p.port);
    let o = d.docker(&["pull", &via]);
    assert!(o.ok().contains("Pull complete"), "{o:?}");
    let seen = p.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.ends_with("RANGE")),
        "a Range request resumed it: {seen:?}"
    );
    assert_eq!(
        d.docker(&["run", "--rm", "--network", "none", &via, "echo", "whole"])
            .ok(),
        "whole\n"
    );
}

#[test]
fn concurrent_pulls_fetch_a_shared_layer_once() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    // Two images over the same base layer.
    d.docker(&[
        "run",
        "--name",
        "extra",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo more > /more",
    ])
    .ok();
    d.docker(&["commit", "extra", "more:1"]).ok();
    d.docker(&["rm", "extra"]).ok();
    let (a, b) = (
        format!("{}/s/a:1", reg.host()),
        format!("{}/s/b:1", reg.host()),
    );
    d.docker(&["tag", "busybox", &a]).ok();
    d.docker(&["tag", "more:1", &b]).ok();
    d.docker(&["push", &a]).ok();
    d.docker(&["push", &b]).ok();
    d.docker(&["rmi", &a, &b, "busybox", "more:1"]).ok();
    assert_eq!(d.docker(&["images", "-q"]).ok(), "");
    let p = proxy(reg.port, None);
    let (va, vb) = (
        format!("127.0.0.1:{}/s/a:1", p.port),
        format!("127.0.0.1:{}/s/b:1", p.port),
    );
    std::thread::scope(|s| {
        let d = &d;
        let h1 = s.spawn(|| d.docker(&["pull", &va]));
        let h2 = s.spawn(|| d.docker(&["pull", &vb]));
        h1.join().unwrap().ok();
        h2.join().unwrap().ok();
    });
    let seen = p.seen.lock().unwrap().clone();
    let mut counts = std::collections::HashMap::new();
    for s in &seen {
        let blob = s
            .split("/blobs/")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        *counts.entry(blob).or_insert(0) += 1;
    }
    assert!(
        counts.values().all(|n| *n == 1),
        "each blob fetched once: {seen:?}"
    );
    assert_eq!(
        d.docker(&["run", "--rm", "--network", "none", &vb, "cat", "/more"])
            .ok(),
        "more\n"
    );
}

#[test]
fn a_mirror_serves_docker_hub_names() {
    let reg = TestRegistry::start("");
    let d0 = Daemon::start();
    let tar = d0.busybox_archive("busybox:latest");
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{}/library/busybox:latest", reg.host()),
    ]);
    drop(d0);
    let mirror = format!("http://{}", reg.host());
    let d = Daemon::start_with(&["--registry-mirror", &mirror]);
    let o = d.docker(&["pull", "busybox"]);
    assert!(
        o.ok().contains("Downloaded newer image for busybox:latest"),
        "{o:?}"
    );
    assert_eq!(
        d.docker(&["run", "--rm", "--network", "none", "busybox", "echo", "hub"])
            .ok(),
        "hub\n"
    );
    assert!(
        reg.log().contains("/v2/library/busybox/manifests/latest"),
        "served by the mirror"
    );
}

#[test]
fn login_with_wrong_and_right_credentials() {
    // bcrypt of "s3cret" for user "tester".
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("s3cret", 5).unwrap();
    std::fs::write(&htpasswd, format!("tester:{hash}\n")).unwrap();
    let reg = TestRegistry::start(&format!(
        "  htpasswd:\n    realm: berth-test\n    path: {}\n",
        htpasswd.display()
    ));
    let d = Daemon::start();
    d.load_busybox();
    let o = d.docker(&["login", "-u", "tester", "-p", "wrong", &reg.host()]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("unauthorized") || o.stderr.contains("authentication required"),
        "{o:?}"
    );
    let name = format!("{}/private/bb:1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    let o = d.docker(&["push", &name]);
    assert_ne!(o.code, 0, "no credentials: refused {o:?}");
    let o = d.docker_in(
        &["login", "-u", "tester", "--password-stdin", &reg.host()],
        b"s3cret\n",
    );
    assert!(o.ok().contains("Login Succeeded"), "{o:?}");
    let cfg = std::fs::read_to_string(d.root.path().join("docker-config/config.json")).unwrap();
    assert!(cfg.contains(&reg.host()), "{cfg}");
    let o = d.docker(&["push", &name]);
    assert!(o.ok().contains("digest: sha256:"), "{o:?}");
    // berth's own login and the saved credentials on a pull.
    let o = d.berth_in(
        &["login", "-u", "tester", "--password-stdin", &reg.host()],
        b"s3cret\n",
    );
    assert!(o.ok().contains("Login Succeeded"));
    d.berth(&["rmi", &name]).ok();
    d.berth(&["pull", &name]).ok();
    d.berth(&["logout", &reg.host()]).ok();
}

/// A test CA, and a server certificate for `ip` signed by it: (ca.crt, server.crt,
/// server.key) in PEM.
fn test_ca(ip: &str) -> (String, String, String, rcgen::Certificate, rcgen::KeyPair) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "berth test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![ip.to_string()]).unwrap();
    p.subject_alt_names = vec![rcgen::SanType::IpAddress(ip.parse().unwrap())];
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (
        ca_cert.pem(),
        cert.pem(),
        key.serialize_pem(),
        ca_cert,
        ca_key,
    )
}

#[test]
fn https_with_a_test_ca_and_client_certificates() {
    // A registry on the test daemon's bridge address (not loopback, so not insecure
    // by default): its certificate must verify against the CA in certs.d.
    let certs = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(&[
        "--bip",
        "10.251.88.1/24",
        "--registry-certs-dir",
        certs.path().to_str().unwrap(),
    ]);
    d.load_busybox();
    let ip = "10.251.88.1";
    let (ca_pem, cert_pem, key_pem, ca_cert, ca_key) = test_ca(ip);
    let tlsdir = tempfile::tempdir().unwrap();
    for (n, v) in [
        ("ca.crt", &ca_pem),
        ("server.crt", &cert_pem),
        ("server.key", &key_pem),
    ] {
        std::fs::write(tlsdir.path().join(n), v).unwrap();
    }
    let tls = format!(
        "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\n    clientcas:\n      - {0}/ca.crt\n",
        tlsdir.path().display()
    );
    let reg = TestRegistry::start_on(ip, "", &tls);
    let name = format!("{}/tls/bb:1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    // Without the CA: the certificate is refused.
    let o = d.docker(&["push", &name]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("TLS") || o.stderr.contains("certificate"),
        "{o:?}"
    );
    // With the CA but no client certificate: the registry refuses the handshake.
    let hostdir = certs.path().join(reg.host());
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::write(hostdir.join("ca.crt"), &ca_pem).unwrap();
    assert_ne!(d.docker(&["push", &name]).code, 0);
    // With a client certificate signed by the CA: push and pull work.
    let ckey = rcgen::KeyPair::generate().unwrap();
    let mut cp = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    cp.distinguished_name
        .push(rcgen::DnType::CommonName, "client");
    let ccert = cp.signed_by(&ckey, &ca_cert, &ca_key).unwrap();
    std::fs::write(hostdir.join("client.cert"), ccert.pem()).unwrap();
    std::fs::write(hostdir.join("client.key"), ckey.serialize_pem()).unwrap();
    let o = d.docker(&["push", &name]);
    assert!(o.ok().contains("digest: sha256:"), "{o:?}");
    d.docker(&["rmi", &name]).ok();
    d.docker(&["pull", &name]).ok();
    assert_eq!(
        d.docker(&["run", "--rm", "--network", "none", &name, "echo", "tls"])
            .ok(),
        "tls\n"
    );
}

/// A token server for the registry's token auth: answers `GET /token?service=&scope=`
/// with an ES256 JWT carrying the scope's access, signed by a key whose certificate
/// is `cert_der` (sent in the header's `x5c`). Counts the tokens it gives out.
fn token_server(
    key: ring::signature::EcdsaKeyPair,
    cert_der: Vec<u8>,
    issuer: &str,
    user: &str,
    pass: &str,
) -> (u16, Arc<Mutex<usize>>) {
    use base64::Engine;
    let b64 = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(Mutex::new(0usize));
    let c2 = count.clone();
    let issuer = issuer.to_string();
    let want_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    );
    let key = Arc::new(key);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut b).unwrap_or(0) == 0 {
                    break;
                }
                head.push(b[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let authorized = text
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("authorization: {want_auth}")));
            if !authorized {
                let body = r#"{"details":"bad credentials for the token server"}"#;
                let _ = s.write_all(format!("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
                continue;
            }
            let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
            let url = url::Url::parse(&format!("http://x{target}")).unwrap();
            let q: std::collections::HashMap<String, String> =
                url.query_pairs().into_owned().collect();
            let access: Vec<serde_json::Value> = q
                .get("scope")
                .into_iter()
                .flat_map(|sc| sc.split(' ').map(String::from).collect::<Vec<_>>())
                .filter_map(|sc| {
                    let parts: Vec<&str> = sc.split(':').collect();
                    (parts.len() == 3).then(|| serde_json::json!({ "type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>() }))
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)] });
            let claims = serde_json::json!({
                "iss": issuer, "sub": "tester", "aud": q.get("service").cloned().unwrap_or_default(),
                "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand_id()),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64(&serde_json::to_vec(&header).unwrap()),
                b64(&serde_json::to_vec(&claims).unwrap())
            );
            let rng = ring::rand::SystemRandom::new();
            let sig = key.sign(&rng, signing_input.as_bytes()).unwrap();
            let token = format!("{signing_input}.{}", b64(sig.as_ref()));
            *c2.lock().unwrap() += 1;
            let body = serde_json::json!({ "token": token, "expires_in": 300 }).to_string();
            let _ = s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
    });
    (port, count)
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn token_auth_with_a_token_server() {
    // The token signing key and its certificate (the registry's root bundle).
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "berth token signer");
    let cert = p.self_signed(&key_pair).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let signing = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key_pair.serialize_der(),
        &rng,
    )
    .unwrap();
    let (tport, issued) = token_server(
        signing,
        cert.der().to_vec(),
        "berth-test-issuer",
        "tester",
        "tok3n",
    );
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("root.crt");
    std::fs::write(&bundle, cert.pem()).unwrap();
    let auth = format!(
        "  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
        bundle.display()
    );
    let reg = TestRegistry::start(&auth);
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/tok/bb:1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    // No credentials: the token server refuses, and the push says so.
    let o = d.docker(&["push", &name]);
    assert_ne!(o.code, 0, "{o:?}");
    // Logged in: tokens come from the token server with the credentials.
    let o = d.docker_in(
        &["login", "-u", "tester", "--password-stdin", &reg.host()],
        b"tok3n\n",
    );
    assert!(o.ok().contains("Login Succeeded"), "{o:?}");
    let o = d.docker(&["push", &name]);
    assert!(o.ok().contains("digest: sha256:"), "{o:?}");
    d.docker(&["rmi", &name]).ok();
    d.docker(&["pull", &name]).ok();
    assert!(*issued.lock().unwrap() >= 2, "tokens were issued");
    // A token is reused within one pull: not one per request.
    let before = *issued.lock().unwrap();
    d.docker(&["rmi", &name]).ok();
    d.docker(&["pull", &name]).ok();
    assert!(
        *issued.lock().unwrap() - before <= 2,
        "{} tokens for one pull",
        *issued.lock().unwrap() - before
    );
}

#[test]
fn image_prune_takes_dangling_then_unused_and_keeps_what_is_used() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker(&[
        "run",
        "--name",
        "mk",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo x > /x",
    ])
    .ok();
    let dangling = d.docker(&["commit", "mk"]).ok().trim().to_string();
    d.docker(&["commit", "mk", "kept:1"]).ok();
    d.docker(&["rm", "mk"]).ok();
    d.docker(&[
        "create",
        "--name",
        "user",
        "--network",
        "none",
        "kept:1",
        "true",
    ])
    .ok();
    d.docker(&["tag", "busybox", "spare:1"]).ok();
    let o = d.docker(&["image", "prune", "-f"]);
    assert!(
        o.ok()
            .contains(&dangling.trim_start_matches("sha256:")[..12])
            || o.ok().contains("deleted"),
        "{o:?}"
    );
    assert!(
        d.docker(&["image", "inspect", &dangling]).code != 0,
        "the dangling image is gone"
    );
    // -a: every unused image goes (busybox and spare are one image); kept:1 stays,
    // and with it the busybox layer it is built on.
    d.docker(&["image", "prune", "-a", "-f"]).ok();
    let left = d
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(left, "kept:1");
    assert_eq!(
        d.docker(&["start", "-a", "user"]).code,
        0,
        "its layers are all there"
    );
}

#[test]
fn save_and_load_interoperate_with_skopeo_and_umoci() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.tar");
    d.berth(&["save", "-o", saved.to_str().unwrap(), "busybox"])
        .ok();
    // One tar, both formats: skopeo reads it as a docker archive and as an OCI one.
    for kind in ["docker-archive", "oci-archive"] {
        let o = Command::new("skopeo")
            .args(["inspect", &format!("{kind}:{}", saved.display())])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // umoci unpacks the OCI layout berth wrote.
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(&saved)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(ok.success());
    let tags = Command::new("umoci")
        .args(["ls", "--layout"])
        .arg(&layout)
        .output()
        .unwrap();
    let tag = String::from_utf8_lossy(&tags.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(
        !tag.is_empty(),
        "umoci sees a tag: {}",
        String::from_utf8_lossy(&tags.stderr)
    );
    let bundle = dir.path().join("bundle");
    let o = Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:{tag}", layout.display())])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(bundle.join("rootfs/bin/busybox").exists());
    // umoci changes the image (a new config); skopeo turns it into an oci-archive;
    // berth loads that and runs it with the new command.
    let o = Command::new("umoci")
        .args([
            "config",
            "--image",
            &format!("{}:{tag}", layout.display()),
            "--tag",
            "changed",
            "--config.cmd",
            "echo",
            "--config.cmd",
            "from-umoci",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let archive = dir.path().join("changed.tar");
    let o = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            &format!("oci:{}:changed", layout.display()),
            &format!("oci-archive:{}:umoci/changed:1", archive.display()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = d.berth(&["load", "-i", archive.to_str().unwrap()]);
    o.ok();
    let images = d
        .berth(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok()
        .to_string();
    let id = images
        .lines()
        .find(|l| !l.starts_with("busybox"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("the loaded image: {images}"))
        .to_string();
    let o = d.berth(&["run", "--rm", "--network", "none", &id]);
    assert_eq!(o.ok(), "from-umoci\n");
}

#[test]
fn credential_helpers_keep_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("helped:{}\n", bcrypt::hash("h3lper", 5).unwrap()),
    )
    .unwrap();
    let reg = TestRegistry::start(&format!(
        "  htpasswd:\n    realm: berth-test\n    path: {}\n",
        htpasswd.display()
    ));
    let d = Daemon::start();
    d.load_busybox();
    // A helper speaking docker-credential-*'s protocol, keeping one secret in a file.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nf=\"$(dirname \"$0\")/secret.json\"\ncase \"$1\" in\n  store) cat > \"$f\" ;;\n  get) cat >/dev/null; if [ -f \"$f\" ]; then cat \"$f\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n  erase) cat >/dev/null; rm -f \"$f\" ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfgdir = d.root.path().join("docker-config");
    std::fs::create_dir_all(&cfgdir).unwrap();
    std::fs::write(cfgdir.join("config.json"), r#"{"credsStore": "berthtest"}"#).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |program: std::path::PathBuf, args: &[&str], stdin: &[u8]| {
        let mut c = Command::new(program)
            .args(args)
            .env("PATH", &path)
            .env("DOCKER_HOST", d.host())
            .env("BERTH_HOST", d.host())
            .env("DOCKER_CONFIG", &cfgdir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let berth = berth_tests::bin("berth");
    let out = run(
        berth.clone(),
        &["login", "-u", "helped", "--password-stdin", &reg.host()],
        b"h3lper\n",
    );
    assert!(out.contains("Login Succeeded"));
    let cfg = std::fs::read_to_string(cfgdir.join("config.json")).unwrap();
    assert!(
        !cfg.contains("\"auth\""),
        "the secret is not in config.json: {cfg}"
    );
    assert!(std::fs::read_to_string(bin.join("secret.json"))
        .unwrap()
        .contains("h3lper"));
    let name = format!("{}/helped/bb:1", reg.host());
    run(berth.clone(), &["tag", "busybox", &name], b"");
    let out = run(berth.clone(), &["push", &name], b"");
    assert!(out.contains("digest: sha256:"), "{out}");
    // The docker CLI uses the same helper.
    run(berth.clone(), &["rmi", &name], b"");
    run(
        std::path::PathBuf::from("/usr/local/bin/docker"),
        &["pull", &name],
        b"",
    );
    run(berth.clone(), &["logout", &reg.host()], b"");
    assert!(!bin.join("secret.json").exists(), "erased");
}

#[test]
fn on_a_terminal_pull_draws_per_layer_lines() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/tty/bb:1", reg.host());
    d.berth(&["tag", "busybox", &name]).ok();
    d.berth(&["push", &name]).ok();
    d.berth(&["rmi", &name, "busybox"]).ok();
    let mut t = berth_tests::PtyCommand::spawn(
        &berth_tests::bin("berth"),
        &["pull", &name],
        &[("BERTH_HOST", d.host())],
        (24, 100),
    );
    // Each layer's line is cleared and redrawn in place.
    t.expect("\x1b[2K");
    t.expect("Pull complete");
    t.expect("Status: Downloaded newer image");
    assert_eq!(t.wait(), 0);
}

#[test]
fn zstd_layers_are_pulled() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    let tar = d.busybox_archive("busybox:latest");
    let dest = format!("{}/zstd/bb:1", reg.host());
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        "--dest-compress-format",
        "zstd",
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{dest}"),
    ]);
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&raw.stdout).contains("tar+zstd"),
        "the layer is zstd"
    );
    d.berth(&["pull", &dest]).ok();
    assert_eq!(
        d.berth(&["run", "--rm", "--network", "none", &dest, "echo", "zstd"])
            .ok(),
        "zstd\n"
    );
    // Pushed back (to an OCI manifest, as Docker's format has no zstd), skopeo reads it.
    let back = format!("{}/zstd/back:1", reg.host());
    d.berth(&["tag", &dest, &back]).ok();
    d.berth(&["push", &back]).ok();
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{back}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `GET /distribution/{name}/json` (docker-py's `inspect_distribution`, buildx
/// after a push): the manifest's descriptor as the registry has it and the
/// platform it serves; a name the registry lacks is 404 in its words.
#[test]
fn distribution_inspect_answers_from_the_registry() {
    let reg = TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let name = format!("{}/dist/bb:v1", reg.host());
    d.docker(&["tag", "busybox", &name]).ok();
    let out = d.docker(&["push", &name]).ok().to_string();
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("v1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the digest is printed")
        .to_string();
    let o = d.docker_py(&format!(
        "d = client.api.inspect_distribution({name:?})\n\
         print(d['Descriptor']['digest'], d['Descriptor']['size'] > 0, d['Platforms'])\n\
         try:\n\
         \x20   client.api.inspect_distribution({missing:?})\n\
         except docker.errors.NotFound as e:\n\
         \x20   print('missing:', e.explanation)\n",
        missing = format!("{}/dist/bb:absent", reg.host()),
    ));
    let out = o.ok();
    assert!(
        out.starts_with(&format!(
            "{digest} True [{{'architecture': 'amd64', 'os': 'linux'}}]\n"
        )),
        "{out}"
    );
    assert!(out.contains("missing: "), "{out}");
    assert!(out.contains("manifest unknown"), "{out}");
}

/// A proxy that holds every blob request (pull or push) for a moment and records
/// how many were in flight at once.
struct SlowProxy {
    port: u16,
    peak: Arc<std::sync::atomic::AtomicUsize>,
}

fn slow_proxy(target: u16) -> SlowProxy {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let busy = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (b2, p2) = (busy.clone(), peak.clone());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let (busy, peak) = (b2.clone(), p2.clone());
            std::thread::spawn(move || {
                let mut client = c;
                let Some(text) = read_head(&mut client) else {
                    return; // plain HTTP only
                };
                // Each blob request is held a moment; requests held at the same
                // time were sent at the same time (a request that comes after an
                // answer can never overlap the hold of the one before).
                let blob = text.lines().next().unwrap_or("").contains("/blobs/");
                if blob {
                    let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
                // One request per connection, whatever the client asked.
                let mut lines: Vec<&str> = text
                    .trim_end()
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .collect();
                lines.push("Connection: close");
                let head = format!("{}\r\n\r\n", lines.join("\r\n"));
                if let Ok(mut up) = TcpStream::connect(("127.0.0.1", target)) {
                    let _ = up.write_all(head.as_bytes());
                    let (mut up_r, mut client_w) =
                        (up.try_clone().unwrap(), client.try_clone().unwrap());
                    let body = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut client, &mut up);
                    });
                    let _ = std::io::copy(&mut up_r, &mut client_w);
                    let _ = client_w.shutdown(std::net::Shutdown::Both);
                    let _ = up_r.shutdown(std::net::Shutdown::Both);
                    let _ = body.join();
                }
            });
        }
    });
    SlowProxy { port, peak }
}

/// dockerd's `max-concurrent-uploads` and `max-concurrent-downloads`: no more
/// layers in flight at once than the limit, the others "Waiting"; the download
/// limit changed by a reload.
#[test]
fn concurrent_transfers_are_limited_as_configured() {
    use std::sync::atomic::Ordering;
    let reg = TestRegistry::start("");
    let d = Daemon::start_with(&["--max-concurrent-uploads", "1"]);
    d.load_busybox();
    // Three layers.
    for (i, base) in [(1, "busybox"), (2, "layered:1")] {
        d.docker(&[
            "run",
            "--name",
            "step",
            "--network",
            "none",
            base,
            "sh",
            "-c",
            &format!("echo {i} > /f{i}"),
        ])
        .ok();
        d.docker(&["commit", "step", &format!("layered:{i}")]).ok();
        d.docker(&["rm", "step"]).ok();
    }
    let p = slow_proxy(reg.port);
    let name = format!("127.0.0.1:{}/lim/layered:2", p.port);
    d.docker(&["tag", "layered:2", &name]).ok();
    let o = d.docker(&["push", &name]);
    let out = o.ok();
    assert_eq!(p.peak.load(Ordering::SeqCst), 1, "one upload at a time");
    assert!(out.contains(": Waiting"), "{out}");
    d.docker(&["rmi", &name, "layered:1", "layered:2", "busybox"])
        .ok();
    // Downloads: three at a time by default.
    p.peak.store(0, Ordering::SeqCst);
    let o = d.docker(&["pull", &name]);
    assert!(!o.ok().contains(": Waiting"), "{o:?}");
    assert!(
        p.peak.load(Ordering::SeqCst) >= 2,
        "layers fetched together"
    );
    // One at a time after a reload.
    std::fs::write(
        d.root.path().join("daemon.json"),
        r#"{"max-concurrent-downloads": 1}"#,
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    berth_tests::wait_until("the reload", || d.log().contains("configuration reloaded"));
    d.docker(&["rmi", &name]).ok();
    p.peak.store(0, Ordering::SeqCst);
    let o = d.docker(&["pull", &name]);
    let out = o.ok();
    assert_eq!(p.peak.load(Ordering::SeqCst), 1, "one download at a time");
    assert_eq!(out.matches(": Waiting").count(), 2, "{out}");
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &name,
            "cat",
            "/f1",
            "/f2"
        ])
        .ok(),
        "1\n2\n"
    );
    std::fs::write(d.root.path().join("daemon.json"), "{}").unwrap();
}
