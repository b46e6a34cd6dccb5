//! BuildKit's clients on berthd: Debian's docker CLI 20.10 with DOCKER_BUILDKIT=1
//! opens a session (POST /session) and builds with `version=2`: the context and
//! the Dockerfile come through the session's file sync, secrets through its
//! secrets service, and progress goes back as BuildKit's status.

use berth_tests::{Daemon, Out};
use std::path::{Path, PathBuf};

fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.root.path().join("ctx").join(name);
    for (f, content) in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    dir
}

fn bk(d: &Daemon, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut a = vec!["build", "--progress=plain"];
    a.extend_from_slice(args);
    a.push(dir.to_str().unwrap());
    let mut e = vec![("DOCKER_BUILDKIT", "1")];
    e.extend_from_slice(env);
    d.docker20_env(&e, &a)
}

fn run(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    d.docker(&a).ok().to_string()
}

#[test]
fn docker_20_buildkit_builds_through_the_session() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = context(
        &d,
        "bk",
        &[
            (
                "Dockerfile",
                "FROM busybox AS build\nARG WHAT=nothing\nCOPY . /src/\nRUN echo \"made $WHAT\" > /out && ls -A /src | tr '\\n' ' '\n\
                 FROM busybox AS final\nCOPY --from=build /out /out\nCMD [\"cat\", \"/out\"]\n\
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
    assert_eq!(run(&d, &["bk:1"]), "made it\n");
    // Again: CACHED steps.
    let o = bk(
        &d,
        &dir,
        &["--target", "final", "--build-arg", "WHAT=it", "-t", "bk:2"],
        &[],
    );
    assert!(o.stderr.contains("CACHED"), "{o:?}");
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
    let dir = context(
        &d,
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
    let history = d.docker(&["history", "--no-trunc", "sec"]).ok().to_string();
    assert!(!history.contains("S3CRET"), "{history}");
    // A required secret the client does not have: BuildKit's words.
    let dir = context(
        &d,
        "missing",
        &[("Dockerfile", "FROM busybox\nRUN --mount=type=secret,id=absent,required=true cat /run/secrets/absent\n")],
    );
    let o = bk(&d, &dir, &[], &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("secret absent: not found"), "{o:?}");
}
