//! BuildKit's clients on berthd. Debian's docker CLI 20.10 with DOCKER_BUILDKIT=1
//! opens a session (POST /session) and builds with `version=2`; Docker Compose v2
//! (buildx's docker driver) drives BuildKit's control API on `POST /grpc` and its
//! frontend gateway. Either way the context and the Dockerfile come through the
//! session's file sync, secrets through its secrets service, the SSH agent through
//! its forwarding, and progress goes back as BuildKit's status.

use berth_tests::{Daemon, Out};
use std::path::Path;

fn bk(d: &Daemon, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut a = vec!["build", "--progress=plain"];
    a.extend_from_slice(args);
    a.push(dir.to_str().unwrap());
    let mut e = vec![("DOCKER_BUILDKIT", "1")];
    e.extend_from_slice(env);
    d.docker20_env(&e, &a)
}

/// No file of the data root and no line of berthd's log holds a test secret
/// (they all start with S3CRET-FROM).
fn assert_no_secret_kept(d: &Daemon) {
    let grep = std::process::Command::new("grep")
        .args(["-rl", "-e", "S3CRET-FROM", d.data_root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "a secret on disk: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    assert!(!d.log().contains("S3CRET-FROM"), "a secret in berthd's log");
}

#[test]
fn docker_20_buildkit_builds_through_the_session() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "bk",
        &[
            (
                "Dockerfile",
                "FROM busybox AS build\nARG WHAT=nothing\nCOPY . /src/\nRUN echo \"made $WHAT\" > /out && ls -A /src | tr '\\n' ' '\n\
                 FROM busybox AS final\nCOPY --from=build /out /out\nRUN ln -s /etc/shadow /leak\nCMD [\"cat\", \"/out\"]\n\
                 FROM busybox AS other\nRUN exit 9\n",
            ),
            (".dockerignore", "*.secret\n"),
            ("app.txt", "app\n"),
            ("key.secret", "never sent\n"),
        ],
    );
    let o = bk(
        &d,
        &dir,
        &["--target", "final", "--build-arg", "WHAT=it", "-t", "bk:1"],
        &[],
    );
    // BuildKit's plain progress: numbered vertexes, the step's output, DONE.
    let err = &o.stderr;
    assert_eq!(o.code, 0, "{o:?}");
    assert!(err.contains("[build 4/4] RUN echo \"made $WHAT\""), "{err}");
    assert!(err.contains(".dockerignore Dockerfile app.txt"), "{err}");
    assert!(err.contains(" DONE "), "{err}");
    assert!(!err.contains("exit 9"), "{err}");
    assert_eq!(d.run_rm(&["bk:1"]), "made it\n");
    // Again: CACHED steps.
    let o = bk(
        &d,
        &dir,
        &["--target", "final", "--build-arg", "WHAT=it", "-t", "bk:2"],
        &[],
    );
    assert!(o.stderr.contains("CACHED"), "{o:?}");
    // -o type=tar: the result's filesystem, through the session.
    let out = d.root.path().join("out.tar");
    let o = bk(
        &d,
        &dir,
        &[
            "--target",
            "final",
            "-o",
            &format!("type=tar,dest={}", out.display()),
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let listing = {
        let mut c = std::process::Command::new("tar");
        c.arg("-tf").arg(&out);
        berth_tests::run(c, None).ok().to_string()
    };
    assert!(listing.lines().any(|l| l == "out"), "{listing}");
    assert!(listing.lines().any(|l| l == "bin/busybox"), "{listing}");
    // -o type=local: the same files, written by the client into a directory.
    let local = d.root.path().join("out-local");
    let o = bk(
        &d,
        &dir,
        &[
            "--target",
            "final",
            "--build-arg",
            "WHAT=it",
            "-o",
            &format!("type=local,dest={}", local.display()),
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        std::fs::read_to_string(local.join("out")).unwrap(),
        "made it\n"
    );
    assert!(local.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(local.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // A link the image holds is sent as a link, never followed to the host's file.
    assert_eq!(
        std::fs::read_link(local.join("leak")).unwrap(),
        Path::new("/etc/shadow")
    );
    // A tar context on stdin: uploaded beside the build (buildid=upload-request:ID).
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let df = b"FROM busybox\nCOPY f /f\nRUN cat /f\n";
        for (name, data) in [("Dockerfile", &df[..]), ("f", b"from the uploaded tar\n")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        b.into_inner().unwrap()
    };
    let o = d.docker20_in(
        &[("DOCKER_BUILDKIT", "1")],
        &["build", "--progress=plain", "-t", "bk:tar", "-"],
        &tar,
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("[stage-0 3/3] RUN cat /f"), "{o:?}");
    assert_eq!(
        d.run_rm(&["bk:tar", "cat", "/f"]),
        "from the uploaded tar\n"
    );
    // A failing step fails the build with its words.
    let o = bk(&d, &dir, &["--target", "other"], &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("did not complete successfully: exit code: 9"),
        "{o:?}"
    );
}

#[test]
fn secrets_from_the_session_never_reach_the_store() {
    let d = Daemon::start();
    d.load_busybox();
    let secret_file = d.root.path().join("mysecret.txt");
    std::fs::write(&secret_file, "S3CRET-FROM-FILE\n").unwrap();
    // The seed document's Dockerfile, on busybox.
    let dir = d.files(
        "secrets",
        &[(
            "Dockerfile",
            "# syntax = docker/dockerfile:1.0-experimental\n\
             FROM busybox\n\
             # shows secret from default secret location:\n\
             RUN --mount=type=secret,id=mysecret cat /run/secrets/mysecret\n\
             # shows secret from custom secret location:\n\
             RUN --mount=type=secret,id=mysecret,dst=/foobar cat /foobar\n\
             RUN --mount=type=secret,id=fromenv,mode=0444,uid=1000 stat -c '%a %u' /run/secrets/fromenv && cat /run/secrets/fromenv\n\
             RUN ls /run/secrets /foobar 2>&1 || true\n",
        )],
    );
    let o = bk(
        &d,
        &dir,
        &[
            "--no-cache",
            "--secret",
            &format!("id=mysecret,src={}", secret_file.display()),
            "--secret",
            "id=fromenv,env=BERTH_TEST_SECRET",
            "-t",
            "sec",
        ],
        &[("BERTH_TEST_SECRET", "S3CRET-FROM-ENV")],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stderr.matches("S3CRET-FROM-FILE").count(), 2, "{o:?}");
    assert!(o.stderr.contains("444 1000"), "{o:?}");
    assert!(o.stderr.contains("S3CRET-FROM-ENV"), "{o:?}");
    assert!(
        o.stderr.contains("/run/secrets: No such file or directory"),
        "{o:?}"
    );
    // Not in a layer, the cache, the history, the image, berthd's log or any file
    // of the data root.
    assert_no_secret_kept(&d);
    let history = d.docker(&["history", "--no-trunc", "sec"]).ok().to_string();
    assert!(!history.contains("S3CRET"), "{history}");
    // A required secret the client does not have: BuildKit's words.
    let dir = d.files(
        "missing",
        &[("Dockerfile", "FROM busybox\nRUN --mount=type=secret,id=absent,required=true cat /run/secrets/absent\n")],
    );
    let o = bk(&d, &dir, &[], &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("secret absent: not found"), "{o:?}");
}

/// A static probe that asks the agent at $SSH_AUTH_SOCK for its identities.
const AGENT_PROBE_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path) { printf("no SSH_AUTH_SOCK\n"); return 1; }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    unsigned char req[5] = {0, 0, 0, 1, 11};
    if (write(s, req, 5) != 5) { perror("write"); return 1; }
    unsigned char r[9]; size_t got = 0;
    while (got < 9) { ssize_t n = read(s, r + got, 9 - got); if (n <= 0) { perror("read"); return 1; } got += n; }
    printf("agent at %s answers type %d with %u identities\n", path, r[4],
           (unsigned)(r[5] << 24 | r[6] << 16 | r[7] << 8 | r[8]));
    return 0;
}
"#;

/// Compiles the agent probe (static, so it runs on busybox) to `out`.
fn build_probe(out: &Path) {
    let o = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(out)
        .arg("-x")
        .arg("c")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(AGENT_PROBE_C.as_bytes())?;
            c.wait_with_output()
        })
        .expect("gcc (the test builds its probe)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// An ssh-agent with one key, for one test alone: in the foreground (-D), so
/// that it goes with the test.
struct SshAgent {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl SshAgent {
    fn start(d: &Daemon) -> SshAgent {
        let socket = d.root.path().join("agent.sock");
        let key = d.root.path().join("id_test");
        let run = |c: &mut std::process::Command| {
            let o = c.output().unwrap();
            assert!(
                o.status.success(),
                "{:?}: {}",
                c,
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let agent = SshAgent { child, socket };
        berth_tests::wait_until("the agent listens", || agent.socket.exists());
        run(std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key));
        run(std::process::Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &agent.socket));
        agent
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--ssh default`: a RUN with `--mount=type=ssh` reaches the client's agent
/// (started here with one key) through the session; SSH_AUTH_SOCK is set.
#[test]
fn ssh_agent_forwarding_through_the_session() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "ssh",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY probe /probe\n\
             RUN --mount=type=ssh /probe\n\
             RUN --mount=type=ssh,id=other,required=false ls /run/buildkit 2>&1 || true\n",
        )],
    );
    build_probe(&dir.join("probe"));
    let agent = SshAgent::start(&d);
    let agent_sock = agent.socket.clone();
    let o = bk(
        &d,
        &dir,
        &["--ssh", "default", "-t", "ssh"],
        &[("SSH_AUTH_SOCK", agent_sock.to_str().unwrap())],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("answers type 12 with 1 identities"),
        "{o:?}"
    );
    // Without --ssh, a required agent fails the step with BuildKit's words.
    let dir = d.files(
        "nossh",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=ssh,required=true true\n",
        )],
    );
    let o = bk(&d, &dir, &[], &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("no SSH key \"default\" forwarded from the client"),
        "{o:?}"
    );
}

/// Each context transfer through a session, from berthd's log: the files sent
/// and the files its kept copy already had.
fn context_transfers(d: &Daemon) -> Vec<(usize, usize)> {
    let log = d.log();
    let mut plain = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let field = |l: &str, k: &str| -> usize {
        let v = &l[l.find(&format!(" {k}=")).expect(k) + k.len() + 2..];
        v.split(' ').next().unwrap().trim().parse().unwrap()
    };
    plain
        .lines()
        .filter(|l| l.contains("context received through the session"))
        .map(|l| (field(l, "files"), field(l, "kept")))
        .collect()
}

/// Docker Compose v2 in a project directory, against this daemon.
fn compose_v2(d: &Daemon, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut a = vec!["compose", "--project-directory", dir.to_str().unwrap()];
    a.extend_from_slice(args);
    d.docker_env(env, &a)
}

/// Compose v2 builds through BuildKit's control API: `build.target`,
/// `build.args`, `build.secrets` from a file and from the environment,
/// `build.ssh: [default]` with an agent of the test's, `build.cache_from`, and
/// `up --build`. The seed document's secret Dockerfile prints the secret; the
/// secret is then nowhere in the store, the history, a saved image or berthd's log.
#[test]
fn compose_v2_builds_through_the_buildkit_api() {
    let d = Daemon::start();
    d.load_busybox();
    let secret_file = d.root.path().join("token.txt");
    std::fs::write(&secret_file, "S3CRET-FROM-FILE\n").unwrap();
    let compose_file = format!(
        "services:\n\
         \x20 app:\n\
         \x20   image: cv2-app\n\
         \x20   build:\n\
         \x20     context: .\n\
         \x20     target: test\n\
         \x20     args:\n\
         \x20       GREETING: hello\n\
         \x20     secrets: [mysecret, fromenv]\n\
         \x20     ssh: [default]\n\
         \x20     cache_from: [cv2-app]\n\
         \x20   command: cat /greeting\n\
         secrets:\n\
         \x20 mysecret:\n\
         \x20   file: {}\n\
         \x20 fromenv:\n\
         \x20   environment: CV2_SECRET\n",
        secret_file.display()
    );
    let dir = d.files(
        "cv2",
        &[
            ("compose.yaml", &compose_file),
            (
                "Dockerfile",
                "# syntax=docker/dockerfile:1\n\
                 FROM busybox AS base\n\
                 ARG GREETING=none\n\
                 RUN echo \"greeting=$GREETING\" > /greeting\n\
                 FROM base AS test\n\
                 COPY probe /probe\n\
                 # shows secret from default secret location:\n\
                 RUN --mount=type=secret,id=mysecret cat /run/secrets/mysecret\n\
                 # shows secret from custom secret location:\n\
                 RUN --mount=type=secret,id=mysecret,dst=/foobar cat /foobar\n\
                 RUN --mount=type=secret,id=fromenv cat /run/secrets/fromenv\n\
                 RUN --mount=type=ssh /probe\n\
                 FROM base AS other\n\
                 RUN echo never-built > /other\n",
            ),
        ],
    );
    build_probe(&dir.join("probe"));
    let agent = SshAgent::start(&d);
    let env = [
        ("CV2_SECRET", "S3CRET-FROM-ENV"),
        ("SSH_AUTH_SOCK", agent.socket.to_str().unwrap()),
    ];
    let o = compose_v2(&d, &dir, &["--progress", "plain", "build"], &env);
    assert_eq!(o.code, 0, "{o:?}");
    // Compose writes its plain progress to stdout.
    let err = &o.stdout;
    // The docker driver (berthd's /grpc), not a buildkit container it would pull.
    assert!(err.contains("using docker driver"), "{err}");
    assert!(
        err.contains(
            "[app test 3/6] RUN --mount=type=secret,id=mysecret cat /run/secrets/mysecret"
        ),
        "{err}"
    );
    assert_eq!(err.matches("S3CRET-FROM-FILE").count(), 2, "{err}");
    assert!(err.contains("S3CRET-FROM-ENV"), "{err}");
    assert!(err.contains("answers type 12 with 1 identities"), "{err}");
    assert!(!err.contains("never-built"), "{err}");
    // The Dockerfile's warnings, on the vertex of reading it.
    assert!(
        err.contains("[app internal] load build definition from Dockerfile\n#1 WARN: the syntax directive (docker/dockerfile:1) is noted and not followed"),
        "{err}"
    );
    assert_eq!(
        d.run_rm(&["cv2-app", "cat", "/greeting"]),
        "greeting=hello\n"
    );
    // The target's stage only.
    let o = d.docker(&["run", "--rm", "cv2-app", "ls", "/other"]);
    assert_ne!(o.code, 0, "{o:?}");
    // Nowhere on disk, in the history, a saved image or the log.
    assert_no_secret_kept(&d);
    let history = d
        .docker(&["history", "--no-trunc", "cv2-app"])
        .ok()
        .to_string();
    assert!(history.contains("GREETING"), "{history}");
    assert!(!history.contains("S3CRET"), "{history}");
    let saved = d.root.path().join("saved.tar");
    d.docker(&["save", "-o", saved.to_str().unwrap(), "cv2-app"])
        .ok();
    let unpacked = d.root.path().join("saved");
    std::fs::create_dir_all(&unpacked).unwrap();
    let mut tar = std::process::Command::new("tar");
    tar.arg("-xf").arg(&saved).arg("-C").arg(&unpacked);
    berth_tests::run(tar, None).ok();
    // Layers are tars inside: grep -a looks through them as they are.
    let grep = std::process::Command::new("grep")
        .args(["-rla", "-e", "S3CRET-FROM", unpacked.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "a secret in the saved image");
    // Again: every step from the cache, and no file of the context sent again
    // (berthd kept the context under the session's shared key).
    let o = compose_v2(&d, &dir, &["--progress", "plain", "build"], &env);
    assert_eq!(o.code, 0, "{o:?}");
    let transfers = context_transfers(&d);
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    // The probe is all the build reads of the context.
    assert_eq!(transfers, [(1, 0), (0, 1)]);
    assert!(o.stdout.matches("CACHED").count() >= 6, "{o:?}");
    assert!(!o.stdout.contains("S3CRET-FROM-FILE"), "{o:?}");
    // With the build cache pruned, cache_from finds the steps in the image.
    d.docker_env(&[("DOCKER_BUILDKIT", "0")], &["builder", "prune", "-af"])
        .ok();
    let o = compose_v2(&d, &dir, &["--progress", "plain", "build"], &env);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.matches("CACHED").count() >= 5,
        "cache_from unused: {o:?}"
    );
    // up --build: built (from the cache) and run.
    let o = compose_v2(&d, &dir, &["--progress", "plain", "up", "--build"], &env);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("greeting=hello"), "{o:?}");
    compose_v2(&d, &dir, &["down"], &[]).ok();
}

/// A client that goes away mid-build (its connections to /grpc and /session
/// die) stops the build: its step's container and scratch go, nothing stays.
#[test]
fn a_compose_v2_client_that_dies_mid_build_leaves_nothing() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "cv2dies",
        &[
            (
                "compose.yaml",
                "services:\n  s:\n    build: .\n    image: cv2-slow\n",
            ),
            ("Dockerfile", "FROM busybox\nRUN echo started; sleep 60\n"),
        ],
    );
    let mut client = std::process::Command::new("/usr/local/bin/docker")
        .args([
            "compose",
            "--project-directory",
            dir.to_str().unwrap(),
            "build",
        ])
        .env("DOCKER_HOST", d.host())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    berth_tests::wait_until("the step runs", || {
        !d.docker(&["ps", "-q"]).ok().trim().is_empty()
    });
    client.kill().unwrap();
    client.wait().unwrap();
    berth_tests::wait_until("the step's container is gone", || {
        d.docker(&["ps", "-aq"]).ok().trim().is_empty()
    });
    assert_eq!(
        d.docker(&["images", "-q", "--filter", "dangling=true"])
            .ok(),
        ""
    );
    assert_eq!(d.docker(&["images", "-q", "cv2-slow"]).ok(), "");
    let tmp = d.data_root.join("build/tmp");
    berth_tests::wait_until("the build's scratch is gone", || {
        std::fs::read_dir(&tmp).map_or(true, |mut r| r.next().is_none())
    });
}

/// Compose's `additional_contexts`: a directory of the client (`local:`) and an
/// image (`docker-image://`) stand for the names the Dockerfile uses; a kind berth
/// cannot take is refused by name and nothing is built.
#[test]
fn compose_v2_named_contexts_from_a_directory_and_an_image() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "cv2named",
        &[
            (
                "compose.yaml",
                "services:\n  s:\n    image: cv2-named\n    build:\n      context: .\n      additional_contexts:\n        extra: ./sub\n        mybase: docker-image://busybox\n",
            ),
            (
                "compose.remote.yaml",
                "services:\n  s:\n    image: cv2-remote\n    build:\n      context: .\n      additional_contexts:\n        extra: https://127.0.0.1:9/never.tar\n",
            ),
            ("Dockerfile", "FROM mybase\nCOPY --from=extra f /f\n"),
            ("sub/f", "from the named context\n"),
        ],
    );
    let o = compose_v2(&d, &dir, &["build"], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        d.run_rm(&["cv2-named", "cat", "/f"]),
        "from the named context\n"
    );
    // A changed directory is a changed source.
    std::fs::write(dir.join("sub/f"), "changed\n").unwrap();
    let o = compose_v2(&d, &dir, &["build"], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(d.run_rm(&["cv2-named", "cat", "/f"]), "changed\n");
    let remote = dir.join("compose.remote.yaml");
    let o = compose_v2(&d, &dir, &["-f", remote.to_str().unwrap(), "build"], &[]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("named build context \"extra\"")
            && o.stderr
                .contains("berth takes images (docker-image://) and the client's directories"),
        "{o:?}"
    );
    assert_eq!(d.docker(&["images", "-q", "cv2-remote"]).ok(), "");
}

/// `berth build --secret` and `--ssh` serve the same session protocol to berthd
/// as the docker CLI: the seed document's secret Dockerfile prints the secret
/// from a file and from a variable, a step reaches the agent, and the secret is
/// then nowhere on disk, in the history or in berthd's log.
#[test]
fn berth_build_serves_secrets_and_the_agent_through_its_session() {
    let d = Daemon::start();
    d.load_busybox();
    let secret_file = d.root.path().join("mysecret.txt");
    std::fs::write(&secret_file, "S3CRET-FROM-FILE\n").unwrap();
    let dir = d.files(
        "berth-secrets",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             COPY probe /probe\n\
             # shows secret from default secret location:\n\
             RUN --mount=type=secret,id=mysecret cat /run/secrets/mysecret\n\
             # shows secret from custom secret location:\n\
             RUN --mount=type=secret,id=mysecret,dst=/foobar cat /foobar\n\
             RUN --mount=type=secret,id=fromenv cat /run/secrets/fromenv\n\
             RUN --mount=type=ssh /probe\n\
             RUN --mount=type=secret,id=absent ls /run/secrets/absent 2>&1 || true\n",
        )],
    );
    build_probe(&dir.join("probe"));
    let agent = SshAgent::start(&d);
    let berth = |args: &[&str]| {
        let mut c = std::process::Command::new(berth_tests::bin("berth"));
        c.args(args)
            .env("BERTH_HOST", d.host())
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env("BERTH_TEST_SECRET", "S3CRET-FROM-ENV");
        berth_tests::run(c, None)
    };
    let src = format!("id=mysecret,src={}", secret_file.display());
    let o = berth(&[
        "build",
        "--progress",
        "plain",
        "--secret",
        &src,
        "--secret",
        "id=fromenv,env=BERTH_TEST_SECRET",
        "--ssh",
        "default",
        "-t",
        "bsec",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout.matches("S3CRET-FROM-FILE").count(), 2, "{o:?}");
    assert!(o.stdout.contains("S3CRET-FROM-ENV"), "{o:?}");
    assert!(
        o.stdout.contains("answers type 12 with 1 identities"),
        "{o:?}"
    );
    // A secret the client does not offer is absent, as BuildKit has it.
    assert!(
        o.stdout.contains("/run/secrets/absent: No such file"),
        "{o:?}"
    );
    assert_no_secret_kept(&d);
    let history = d
        .docker(&["history", "--no-trunc", "bsec"])
        .ok()
        .to_string();
    assert!(!history.contains("S3CRET"), "{history}");
    // Bad specifications are refused before anything is sent.
    let o = berth(&[
        "build",
        "--secret",
        "id=x,src=/nonexistent/berth",
        dir.to_str().unwrap(),
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("failed to stat /nonexistent/berth"),
        "{o:?}"
    );
    let o = berth(&[
        "build",
        "--ssh",
        "default=/etc/hostname",
        dir.to_str().unwrap(),
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("is not an agent socket"), "{o:?}");
}

/// Only what the build reads comes through the session: the sources its target
/// copies, nothing for a Dockerfile that copies none; an image's ONBUILD
/// trigger (which may read anything) gets the whole context.
#[test]
fn only_the_files_a_build_reads_come_through_the_session() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "follow",
        &[
            (
                "Dockerfile",
                "FROM busybox AS app\nCOPY app/ /app/\nFROM busybox AS unused\nCOPY big/ /big/\n",
            ),
            ("Dockerfile.none", "FROM busybox\nRUN echo nothing read\n"),
            ("Dockerfile.onbuild", "FROM busybox\nONBUILD COPY . /ctx/\n"),
            ("Dockerfile.child", "FROM onb\nRUN ls /ctx | tr '\\n' ' '\n"),
            ("app/main.c", "int main;\n"),
            ("big/1.bin", "one\n"),
            ("big/2.bin", "two\n"),
            ("other.txt", "other\n"),
        ],
    );
    let dir_s = dir.to_str().unwrap();
    let o = bk(&d, &dir, &["--target", "app", "-t", "f1"], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(d.run_rm(&["f1", "cat", "/app/main.c"]), "int main;\n");
    let o = bk(&d, &dir, &["-f", &format!("{dir_s}/Dockerfile.none")], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = bk(
        &d,
        &dir,
        &["-f", &format!("{dir_s}/Dockerfile.onbuild"), "-t", "onb"],
        &[],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = bk(&d, &dir, &["-f", &format!("{dir_s}/Dockerfile.child")], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("Dockerfile.none Dockerfile.onbuild app big other.txt"),
        "{o:?}"
    );
    let t = context_transfers(&d);
    // app/main.c; nothing; nothing (ONBUILD runs in a child); all five files.
    let sent: Vec<usize> = t.iter().map(|(f, k)| f + k).collect();
    assert_eq!(sent, [1, 0, 0, 8], "{t:?}");
}

/// FROM an image of a registry that wants a login, built by compose v2: berthd
/// asks the client's session for the registry's credentials (`Auth/Credentials`,
/// answered from the docker CLI's config), as BuildKit does.
#[test]
fn compose_v2_pulls_a_private_base_with_the_sessions_credentials() {
    let d = Daemon::start();
    d.load_busybox();
    let (reg, _dir, remote) = berth_tests::private_base(&d);
    let ctx = d.files(
        "cv2private",
        &[
            (
                "Dockerfile",
                &format!("FROM {remote}\nRUN echo pulled > /p\n"),
            ),
            (
                "compose.yaml",
                "services:\n  s:\n    build: .\n    image: cv2-priv\n",
            ),
        ],
    );
    let o = compose_v2(&d, &ctx, &["build"], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(d.run_rm(&["cv2-priv", "cat", "/p"]), "pulled\n");
    // Logged out: the pull is refused, in the build's words.
    d.docker(&["logout", &reg.host()]).ok();
    d.docker(&["rmi", &remote]).ok();
    let o = compose_v2(&d, &ctx, &["build", "--no-cache"], &[]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        format!("{}{}", o.stdout, o.stderr).contains("failed to resolve source metadata"),
        "{o:?}"
    );
}

/// BuildKit's control API as a client sees it on the wire (berth's own gRPC
/// client on `POST /grpc`, where buildx's `du` and `prune` would call): the worker
/// and version, the build cache's records and their pruning, and refusals with a
/// gRPC status that names what is missing.
#[test]
fn the_control_api_answers_workers_disk_usage_and_prune() {
    use berth_buildkit::control as pb;
    use berth_buildkit::grpc::Channel;
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "du",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one > /one\nCOPY Dockerfile /\n",
        )],
    );
    assert_eq!(bk(&d, &dir, &["-t", "du"], &[]).code, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn.with_upgrades());
        let req = hyper::Request::post("http://berth/grpc")
            .header("Connection", "Upgrade")
            .header("Upgrade", "h2c")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 101);
        let up = hyper::upgrade::on(resp).await.unwrap();
        let (ch, _conn) = Channel::connect(up).await.unwrap();
        let c = |m: &str| format!("/moby.buildkit.v1.Control/{m}");
        let w: pb::ListWorkersResponse = ch
            .unary(&c("ListWorkers"), &[], &pb::ListWorkersRequest::default())
            .await
            .unwrap();
        assert_eq!(w.record.len(), 1);
        let p = &w.record[0].platforms[0];
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "amd64"));
        assert_eq!(
            w.record[0].labels["org.mobyproject.buildkit.worker.executor"],
            "berth"
        );
        let info: pb::InfoResponse = ch.unary(&c("Info"), &[], &pb::Empty {}).await.unwrap();
        assert!(!info.buildkit_version.unwrap().version.is_empty());
        let du: pb::DiskUsageResponse = ch
            .unary(&c("DiskUsage"), &[], &pb::DiskUsageRequest::default())
            .await
            .unwrap();
        assert!(!du.record.is_empty(), "{du:?}");
        assert!(du.record.iter().all(|r| r.last_used_at.is_some()));
        // Prune streams what it removed; nothing is left.
        let (tx, mut rx) = ch
            .bidi::<pb::PruneRequest, pb::UsageRecord>(&c("Prune"), &[])
            .await
            .unwrap();
        tx.send(pb::PruneRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap();
        drop(tx);
        let mut pruned = Vec::new();
        while let Some(r) = rx.next().await.unwrap() {
            pruned.push(r.id);
        }
        for r in &du.record {
            assert!(pruned.contains(&r.id), "{pruned:?} lacks {}", r.id);
        }
        let du: pb::DiskUsageResponse = ch
            .unary(&c("DiskUsage"), &[], &pb::DiskUsageRequest::default())
            .await
            .unwrap();
        assert!(du.record.is_empty(), "{du:?}");
        // What berth does not serve: a status that says so.
        let e = ch
            .unary::<_, pb::Empty>(&c("ListenBuildHistory"), &[], &pb::Empty {})
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "berthd does not serve /moby.buildkit.v1.Control/ListenBuildHistory (gRPC status 12)"
        );
        let e = ch
            .unary::<_, pb::SolveResponse>(
                &c("Solve"),
                &[],
                &pb::SolveRequest {
                    r#ref: "r1".into(),
                    session: "s1".into(),
                    definition: Some(pb::Definition {
                        def: vec![b"op".to_vec()],
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("raw LLB definition: berth builds Dockerfiles"),
            "{e}"
        );
    });
}

/// A cache mount outlives the build for BuildKit's clients too: the second build
/// (its steps run again, `--no-cache`) finds what the first left there.
#[test]
fn a_cache_mount_serves_the_next_buildkit_build() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "cachemount",
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN --mount=type=cache,target=/var/cache/app \
                 if [ -f /var/cache/app/warm ]; then echo cache-warm; else echo cache-cold; touch /var/cache/app/warm; fi\n",
            ),
            ("compose.yaml", "services:\n  s:\n    build: .\n    image: cm\n"),
        ],
    );
    let o = bk(&d, &dir, &["--no-cache"], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("cache-cold"), "{o:?}");
    let o = compose_v2(
        &d,
        &dir,
        &["--progress", "plain", "build", "--no-cache"],
        &[],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("cache-warm"), "{o:?}");
    // The image holds none of it.
    assert_eq!(
        d.run_rm(&["cm", "sh", "-c", "ls -A /var/cache/app 2>/dev/null | wc -l"]),
        "0\n"
    );
}

/// `docker compose build --push`: the image is built through BuildKit's API and
/// pushed (buildx's docker driver pushes through the engine API); it then pulls
/// back from the registry.
#[test]
fn compose_v2_build_push_reaches_the_registry() {
    let reg = berth_tests::TestRegistry::start("");
    let d = Daemon::start();
    d.load_busybox();
    let image = format!("{}/cv2push:1", reg.host());
    let dir = d.files(
        "cv2push",
        &[
            ("Dockerfile", "FROM busybox\nRUN echo pushed > /p\n"),
            (
                "compose.yaml",
                &format!("services:\n  s:\n    build: .\n    image: {image}\n"),
            ),
        ],
    );
    let o = compose_v2(&d, &dir, &["build", "--push"], &[]);
    assert_eq!(o.code, 0, "{o:?}");
    d.docker(&["rmi", &image]).ok();
    d.docker(&["pull", &image]).ok();
    assert_eq!(d.run_rm(&[&image, "cat", "/p"]), "pushed\n");
}
