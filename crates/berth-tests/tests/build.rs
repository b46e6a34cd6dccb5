//! Builds: `docker build` (the CLI's classic path to `POST /build`), docker-py's
//! `images.build`, the Dockerfile's instructions and the build cache.

use berth_tests::{Daemon, Out};
use std::path::Path;

/// `docker build` through the classic endpoint (no BuildKit on the client).
fn build(d: &Daemon, dir: &Path, args: &[&str]) -> Out {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    a.push(dir.to_str().unwrap());
    d.docker_env(&[("DOCKER_BUILDKIT", "0")], &a)
}

#[test]
fn docker_build_runs_steps_and_makes_a_tagged_image() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "basic",
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 ENV APP_HOME=/opt/app \\\n    GREETING=\"hello there\"\n\
                 ENV CONF=${APP_HOME}/conf\n\
                 WORKDIR $APP_HOME\n\
                 COPY hello.txt ./\n\
                 COPY dir/ $CONF/\n\
                 RUN echo \"built $GREETING\" > built.txt && mkdir -p logs\n\
                 LABEL org.example.name=\"demo app\" version=1\n\
                 EXPOSE 8080 53/udp\n\
                 USER 1000:1000\n\
                 CMD [\"cat\", \"/opt/app/built.txt\"]\n",
            ),
            ("hello.txt", "hello\n"),
            ("dir/a.conf", "a=1\n"),
            ("dir/sub/b.conf", "b=2\n"),
        ],
    );
    let o = build(&d, &dir, &["-t", "demo:1", "-t", "demo:latest"]);
    let out = o.ok();
    assert!(out.contains("Step 1/11 : FROM busybox"), "{out}");
    assert!(out.contains("Successfully tagged demo:1"), "{out}");
    assert_eq!(d.run_rm(&["demo:1"]), "built hello there\n");
    assert_eq!(
        d.run_rm(&[
            "demo:latest",
            "sh",
            "-c",
            "pwd; id -u; cat hello.txt /opt/app/conf/a.conf /opt/app/conf/sub/b.conf"
        ]),
        "/opt/app\n1000\nhello\na=1\nb=2\n"
    );
    let inspect = d
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Labels}} {{json .Config.ExposedPorts}} {{.Config.User}} {{json .Config.Env}}",
            "demo:1",
        ])
        .ok()
        .to_string();
    assert!(
        inspect.contains("\"org.example.name\":\"demo app\""),
        "{inspect}"
    );
    assert!(
        inspect.contains("\"53/udp\":{}") && inspect.contains("\"8080/tcp\":{}"),
        "{inspect}"
    );
    assert!(inspect.contains(" 1000:1000 "), "{inspect}");
    assert!(inspect.contains("CONF=/opt/app/conf"), "{inspect}");
    // The history: one entry per step, the base's below, `<missing>` for all but the top.
    let h = d
        .docker(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.CreatedBy}}",
            "demo:1",
        ])
        .ok()
        .to_string();
    let lines: Vec<&str> = h.lines().collect();
    assert!(lines[0].starts_with("sha256:"), "{h}");
    assert!(
        lines[0].contains("CMD [\"cat\",\"/opt/app/built.txt\"]"),
        "{h}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RUN /bin/sh -c echo \"built $GREETING\"")),
        "{h}"
    );
    assert!(lines[1].starts_with("<missing>"), "{h}");
    // -q prints the ID alone; --iidfile gets it from the stream's aux.
    let iid = d.root.path().join("iid");
    let o = build(
        &d,
        &dir,
        &["-q", "--iidfile", iid.to_str().unwrap(), "-t", "demo:q"],
    );
    let id = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "demo:q"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(o.ok().trim(), id);
    // (With -q the CLI writes what it printed, the newline too, as with Docker.)
    assert_eq!(std::fs::read_to_string(&iid).unwrap().trim(), id);
    // No intermediate container or image is left.
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
    let images = d
        .docker(&["images", "-q", "--filter", "dangling=true"])
        .ok()
        .to_string();
    assert_eq!(images, "", "temporary images left behind");
}

#[test]
fn rebuild_hits_the_cache_unless_copied_content_changes() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "cache",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy && cat /proc/sys/kernel/random/uuid > /stamp\nCOPY b.txt /b.txt\n",
            ),
            ("a.txt", "one\n"),
            ("b.txt", "two\n"),
            ("unrelated.txt", "x\n"),
        ],
    );
    build(&d, &dir, &["-t", "c:1"]).ok();
    let id1 = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "c:1"])
        .ok()
        .to_string();
    let stamp1 = d.run_rm(&["c:1", "cat", "/stamp"]);
    // Nothing changed, then an unrelated file and a touch: every step is cached,
    // and the image is the same.
    std::fs::write(dir.join("unrelated.txt"), "y\n").unwrap();
    let f = std::fs::File::options()
        .append(true)
        .open(dir.join("a.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let o = build(&d, &dir, &["-t", "c:2"]);
    assert_eq!(o.ok().matches("Using cache").count(), 3, "{o:?}");
    let id2 = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "c:2"])
        .ok()
        .to_string();
    assert_eq!(id1, id2);
    // A change to the file copied late reuses the steps before it.
    std::fs::write(dir.join("b.txt"), "three\n").unwrap();
    let o = build(&d, &dir, &["-t", "c:3"]);
    assert_eq!(o.ok().matches("Using cache").count(), 2, "{o:?}");
    assert_eq!(
        d.run_rm(&["c:3", "cat", "/stamp", "/b.txt"]),
        format!("{stamp1}three\n")
    );
    // --no-cache runs everything again.
    let o = build(&d, &dir, &["--no-cache", "-t", "c:4"]);
    assert_eq!(o.ok().matches("Using cache").count(), 0, "{o:?}");
    assert_ne!(d.run_rm(&["c:4", "cat", "/stamp"]), stamp1);
}

#[test]
fn multi_stage_with_target_and_copy_from() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "stages",
        &[
            (
                "Dockerfile",
                "ARG BASE=busybox\n\
                 FROM $BASE AS builder\n\
                 WORKDIR /src\n\
                 COPY main.txt .\n\
                 RUN tr a-z A-Z < main.txt > /app.bin\n\
                 FROM busybox AS test\n\
                 RUN exit 3\n\
                 FROM ${BASE}\n\
                 COPY --from=builder /app.bin /usr/local/bin/app\n\
                 CMD [\"cat\", \"/usr/local/bin/app\"]\n",
            ),
            ("main.txt", "compiled\n"),
        ],
    );
    // The failing `test` stage is not needed by the last stage: never built.
    let o = build(&d, &dir, &["-t", "app"]);
    assert!(!o.ok().contains("exit 3"), "{o:?}");
    assert_eq!(d.run_rm(&["app"]), "COMPILED\n");
    // --target stops at a stage; a failing RUN fails with BuildKit's words.
    let o = build(&d, &dir, &["--target", "builder", "-t", "app:builder"]);
    o.ok();
    assert_eq!(
        d.run_rm(&["app:builder", "cat", "/src/main.txt"]),
        "compiled\n"
    );
    let o = build(&d, &dir, &["--target", "test", "-t", "app:test"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"),
        "{o:?}"
    );
    assert!(o.stderr.contains("Dockerfile:7"), "{o:?}");
    let o = build(&d, &dir, &["--target", "nope"]);
    assert!(
        o.stderr
            .contains("target stage \"nope\" could not be found"),
        "{o:?}"
    );
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
}

#[test]
fn bad_dockerfiles_name_the_line_and_leave_nothing() {
    let d = Daemon::start();
    d.load_busybox();
    let before = d.docker(&["images", "-aq"]).ok().to_string();
    for (df, msg) in [
        ("FROM busybox\nRUNN echo\n", "Dockerfile:2: dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM busybox\nCOPY missing.txt /x\n", "\"/missing.txt\": not found"),
        ("FROM busybox\nCOPY a b /dst\n", "must be a directory and end with a /"),
        ("FROM busybox\nRUN --security=insecure true\n", "security.insecure is not allowed"),
        (
            "FROM --platform=linux/s390x busybox\n",
            "does not match the specified platform: wanted linux/s390x, actual: linux/amd64",
        ),
        // A registry on loopback that is not there (never a public one).
        ("FROM 127.0.0.1:9/nosuchimage:1\n", "failed to resolve source metadata for 127.0.0.1:9/nosuchimage:1"),
    ] {
        let dir = d.files( "bad", &[("Dockerfile", df), ("a", "1"), ("b", "2")]);
        let o = build(&d, &dir, &["-t", "bad"]);
        assert_ne!(o.code, 0, "{df}: {o:?}");
        assert!(o.stderr.contains(msg), "{df}: {o:?}");
    }
    assert_eq!(d.docker(&["images", "-aq"]).ok(), before);
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
    // Outputs other than the image are the client's to write.
    let (status, _, body) = d.api(
        "POST",
        "/build?outputs=%5B%7B%22Type%22%3A%22local%22%7D%5D",
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not written by berthd's /build"), "{body}");
}

fn docker_py(d: &Daemon, script: &str) -> Out {
    d.docker_py(script)
}

#[test]
fn docker_py_builds_and_reports_failures() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "py",
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG WHO=nobody\nRUN echo \"hi $WHO\" > /who\nCMD [\"cat\", \"/who\"]\n",
            ),
            ("Dockerfile.fail", "FROM busybox\nRUN echo doomed; exit 7\n"),
        ],
    );
    let o = docker_py(
        &d,
        &format!(
            "img, logs = client.images.build(path={:?}, tag='py:1', buildargs={{'WHO': 'python'}}, labels={{'via': 'docker-py'}})\n\
             print(img.id, img.tags, img.labels['via'])\n\
             print(client.containers.run('py:1', remove=True).decode(), end='')\n\
             try:\n    client.images.build(path={:?}, dockerfile='Dockerfile.fail')\n\
             except docker.errors.BuildError as e:\n    print('BuildError:', e.msg)\n",
            dir.to_str().unwrap(),
            dir.to_str().unwrap()
        ),
    );
    let out = o.ok();
    assert!(out.contains("['py:1'] docker-py"), "{out}");
    assert!(out.contains("hi python\n"), "{out}");
    assert!(
        out.contains("BuildError: failed to solve: Dockerfile.fail:2: RUN echo doomed; exit 7: process \"/bin/sh -c echo doomed; exit 7\" did not complete successfully: exit code: 7"),
        "{out}"
    );
    assert!(out.contains("last output:\ndoomed"), "{out}");
}

#[test]
fn docker_compose_v1_builds_and_ups() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "compose1",
        &[
            (
                "docker-compose.yml",
                "version: '3'\nservices:\n  web:\n    build:\n      context: .\n      args:\n        MSG: from-compose\n    image: c1web:latest\n    command: [\"sh\", \"-c\", \"cat /msg; sleep 30\"]\n",
            ),
            ("Dockerfile", "FROM busybox\nARG MSG\nRUN echo $MSG > /msg\n"),
        ],
    );
    let compose = |args: &[&str]| {
        let mut cmd = std::process::Command::new("/usr/bin/docker-compose");
        cmd.args(["-p", "c1"])
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", d.host());
        berth_tests::run(cmd, None)
    };
    compose(&["build"]).ok();
    compose(&["up", "-d", "--build"]).ok();
    berth_tests::wait_until("the service printed its message", || {
        d.docker(&["logs", "c1_web_1"])
            .stdout
            .contains("from-compose")
    });
    compose(&["down", "-t", "0"]).ok();
}

#[test]
fn dockerfile_features_from_the_reference() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "features",
        &[
            (
                "Dockerfile",
                "# syntax=docker/dockerfile:1\n\
                 ARG TAG=latest\n\
                 FROM --platform=$BUILDPLATFORM busybox:${TAG} AS base\n\
                 ONBUILD RUN echo triggered > /onbuild\n\
                 FROM base AS child\n\
                 SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n\
                 ARG TAG\n\
                 ARG V=1.2.3\n\
                 ENV FULL=${V%.*} NAME=${UNSET:-default}\n\
                 RUN <<EOF\n\
                 echo \"tag=$TAG v=$V\" > /heredoc\n\
                 echo second >> /heredoc\n\
                 EOF\n\
                 COPY <<-EOT /etc/inline.conf\n\
                 \tkey=$FULL\n\
                 \tEOT\n\
                 COPY --chown=1234:5678 --chmod=640 keep/ /keep/\n\
                 COPY --exclude=*.tmp data/ /data/\n\
                 ADD archive.tar /unpacked/\n\
                 RUN --mount=type=cache,target=/cache,id=c1 echo x >> /cache/runs && wc -l < /cache/runs > /runs\n\
                 RUN --mount=type=bind,from=base,source=/bin,target=/basebin ls /basebin/busybox > /bound\n\
                 RUN --mount=type=tmpfs,target=/scratch touch /scratch/f && ls /scratch > /tmpfs\n\
                 RUN --mount=type=secret,id=absent cat /run/secrets/absent 2>/dev/null || echo nosecret > /secret\n\
                 RUN --network=none ls /sys/class/net > /net\n\
                 VOLUME /vol\n\
                 STOPSIGNAL SIGUSR1\n\
                 MAINTAINER someone@example.com\n\
                 HEALTHCHECK --interval=5s --retries=2 CMD true\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                 CMD [\"cat /heredoc\"]\n",
            ),
            (".dockerignore", "data/*.log\n!data/keep.log\n"),
            ("keep/file", "kept\n"),
            ("data/a.log", "ignored\n"),
            ("data/keep.log", "exception\n"),
            ("data/b.tmp", "excluded\n"),
            ("data/c.txt", "copied\n"),
        ],
    );
    // A tar for ADD to unpack.
    let tar_path = dir.join("archive.tar");
    {
        let f = std::fs::File::create(&tar_path).unwrap();
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "inner/file.txt", &b"tar\n"[..])
            .unwrap();
        b.finish().unwrap();
    }
    let o = build(&d, &dir, &["-t", "feat", "--build-arg", "V=4.5.6"]);
    let out = o.ok().to_string();
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert!(
        out.contains("the syntax directive (docker/dockerfile:1) is noted and not followed"),
        "{out}"
    );
    assert_eq!(
        d.docker(&["run", "--rm", "feat"]).ok(),
        "tag=latest v=4.5.6\nsecond\n"
    );
    let sh = |script: &str| d.docker(&["run", "--rm", "feat", script]).ok().to_string();
    assert_eq!(sh("cat /onbuild"), "triggered\n");
    assert_eq!(sh("echo $FULL $NAME"), "4.5 default\n");
    assert_eq!(sh("cat /etc/inline.conf"), "key=4.5\n");
    assert_eq!(
        sh("stat -c '%u:%g %a' /keep/file; cat /keep/file"),
        "1234:5678 640\nkept\n"
    );
    assert_eq!(sh("ls /data | sort | tr '\\n' ' '"), "c.txt keep.log ");
    assert_eq!(sh("cat /unpacked/inner/file.txt"), "tar\n");
    assert_eq!(
        sh("cat /runs /bound /tmpfs /secret /net"),
        "1\n/basebin/busybox\nf\nnosecret\nlo\n"
    );
    let i = d
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Volumes}} {{.Config.StopSignal}} {{json .Config.Healthcheck}} {{json .Config.Shell}} {{.Author}}",
            "feat",
        ])
        .ok()
        .to_string();
    assert!(i.contains("{\"/vol\":{}} SIGUSR1"), "{i}");
    assert!(
        i.contains("\"Interval\":5000000000") && i.contains("\"Retries\":2"),
        "{i}"
    );
    assert!(i.contains("[\"/bin/sh\",\"-e\",\"-c\"]"), "{i}");
    assert!(i.trim_end().ends_with("someone@example.com"), "{i}");
    // The cache mount persists between builds: a --no-cache build runs the step
    // again over the same cache.
    build(
        &d,
        &dir,
        &["--no-cache", "-t", "feat:2", "--build-arg", "V=4.5.6"],
    )
    .ok();
    assert_eq!(
        d.docker(&["run", "--rm", "feat:2", "cat /runs"]).ok(),
        "2\n"
    );
    // A required secret with no provider fails with BuildKit's words.
    let bad = d.files(
        "secret",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=tok,required cat /run/secrets/tok\n",
        )],
    );
    let o = build(&d, &bad, &[]);
    assert!(o.stderr.contains("secret tok: not found"), "{o:?}");
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "parallel",
        &[(
            "Dockerfile",
            "FROM busybox AS a\nRUN sleep 1.5 && echo a > /a\n\
             FROM busybox AS b\nRUN sleep 1.5 && echo b > /b\n\
             FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
        )],
    );
    let t = std::time::Instant::now();
    build(&d, &dir, &["-t", "par"]).ok();
    let took = t.elapsed();
    // Two 1.5 s steps one after the other would take 3 s at the least.
    assert!(
        took < std::time::Duration::from_millis(2900),
        "took {took:?}"
    );
    assert_eq!(d.run_rm(&["par", "cat", "/a", "/b"]), "a\nb\n");
}

/// BuildKit's CVE-2024-23652: removing the mount points a RUN's mounts needed
/// followed a symlink the step put in their place, and deleted host files.
#[test]
fn cve_2024_23652_mount_stub_cleanup_never_leaves_the_layer() {
    let d = Daemon::start();
    d.load_busybox();
    let victim = d.root.path().join("victim");
    std::fs::create_dir_all(victim.join("b/c")).unwrap();
    let dir = d.files(
        "stubs",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nRUN --mount=type=tmpfs,target=/a/b/c mv /a /moved && ln -s {} /a\n",
                victim.display()
            ),
        )],
    );
    build(&d, &dir, &["-t", "stubs"]).ok();
    assert!(victim.join("b/c").is_dir(), "a host directory was removed");
    let link = d
        .docker(&["run", "--rm", "stubs", "readlink", "/a"])
        .ok()
        .to_string();
    assert_eq!(link.trim(), victim.to_str().unwrap());
}

/// A stage's symlinks (absolute, or climbing with `..`) resolve inside that
/// stage's filesystem when another stage copies or mounts through them, never on
/// the host.
#[test]
fn build_copy_and_mounts_through_symlinks_stay_inside_the_stage() {
    let d = Daemon::start();
    d.load_busybox();
    let secret = d.root.path().join("host-secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "HOST SECRET\n").unwrap();
    let s = secret.display();
    let dir = d.files(
        "links",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox AS evil\n\
                 RUN ln -s {s} /abs && ln -s ../../../../../../..{s} /climb && mkdir -p {s} && echo stage > {s}/key\n\
                 FROM busybox\n\
                 COPY --from=evil /abs/key /abs-key\n\
                 COPY --from=evil /climb/key /climb-key\n\
                 RUN --mount=type=bind,from=evil,source=/abs,target=/m cat /m/key > /mounted-key\n"
            ),
        )],
    );
    build(&d, &dir, &["-t", "links"]).ok();
    let got = d
        .docker(&[
            "run",
            "--rm",
            "links",
            "cat",
            "/abs-key",
            "/climb-key",
            "/mounted-key",
        ])
        .ok()
        .to_string();
    assert_eq!(got, "stage\nstage\nstage\n");
    // Without the stage's own copy, the path is not found: the host's is never read.
    let dir = d.files(
        "links2",
        &[(
            "Dockerfile",
            &format!("FROM busybox AS evil\nRUN ln -s {s} /abs\nFROM busybox\nCOPY --from=evil /abs/key /k\n"),
        )],
    );
    let o = build(&d, &dir, &[]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("not found"), "{o:?}");
}

/// A context archive with entries that climb out, or write through a symlink it
/// made, is refused without writing outside the build's directory.
#[test]
fn build_context_archive_cannot_write_outside_its_directory() {
    let d = Daemon::start();
    d.load_busybox();
    let outside = d.root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let o = docker_py(
        &d,
        &format!(
            "import io, tarfile\n\
             for name, link in [('../../../../../../../../{o}/climbed', None), ('link', '{o}')]:\n\
             \x20   buf = io.BytesIO()\n\
             \x20   t = tarfile.open(fileobj=buf, mode='w')\n\
             \x20   df = b'FROM busybox\\n'\n\
             \x20   i = tarfile.TarInfo('Dockerfile'); i.size = len(df); t.addfile(i, io.BytesIO(df))\n\
             \x20   if link:\n\
             \x20       i = tarfile.TarInfo(name); i.type = tarfile.SYMTYPE; i.linkname = link; t.addfile(i)\n\
             \x20       i = tarfile.TarInfo(name + '/through'); i.size = 1; t.addfile(i, io.BytesIO(b'x'))\n\
             \x20   else:\n\
             \x20       i = tarfile.TarInfo(name); i.size = 1; t.addfile(i, io.BytesIO(b'x'))\n\
             \x20   t.close(); buf.seek(0)\n\
             \x20   out = list(client.api.build(fileobj=buf, custom_context=True, decode=True))\n\
             \x20   print(out[-1])\n",
            o = outside.display()
        ),
    );
    o.ok();
    let left: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(
        left.is_empty(),
        "written outside the context: {left:?} {o:?}"
    );
    let tmp = d.data_root.join("build/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|r| r.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "build scratch left: {left:?}");
}

#[test]
fn build_cache_in_system_df_and_pruned() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "prune",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/c echo x > /c/f && head -c 100000 /dev/zero > /big\nCOPY Dockerfile /\n",
        )],
    );
    build(&d, &dir, &["-t", "p"]).ok();
    let df = d
        .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok()
        .to_string();
    let line = df
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or_default()
        .to_string();
    let count: usize = line.rsplit(' ').next().unwrap_or("0").parse().unwrap_or(0);
    assert!(count >= 3, "{df}");
    // Nothing is older than an hour: kept.
    d.docker(&["builder", "prune", "-f", "--filter", "until=1h"])
        .ok();
    let df2 = d
        .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok()
        .to_string();
    assert!(df2.contains(&line), "{df2}");
    // The image keeps its layers; the cache goes.
    let o = d.docker(&["builder", "prune", "-f"]);
    assert!(o.ok().contains("Total reclaimed space"), "{o:?}");
    let df = d
        .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok()
        .to_string();
    assert!(df.contains("Build Cache 0"), "{df}");
    assert_eq!(d.run_rm(&["p", "sh", "-c", "wc -c < /big"]), "100000\n");
    let o = build(&d, &dir, &["-t", "p"]);
    assert_eq!(o.ok().matches("Using cache").count(), 0, "{o:?}");
}

#[test]
fn builder_gc_from_daemon_json_prunes_after_builds() {
    // A policy that keeps nothing (dockerd's `builder.gc`, Go's key case).
    let d = Daemon::start_configured(
        &[],
        r#"{"builder": {"GC": {"Enabled": true, "Policy": [{"All": true, "KeepStorage": "0"}]}}}"#,
    );
    d.load_busybox();
    let dir = d.files(
        "gc",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN head -c 100000 /dev/zero > /big\nCOPY Dockerfile /\n",
        )],
    );
    let count = |d: &Daemon| {
        let df = d
            .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
            .ok()
            .to_string();
        df.lines()
            .find_map(|l| l.strip_prefix("Build Cache "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    };
    build(&d, &dir, &["-t", "g"]).ok();
    berth_tests::wait_until("the builder's GC pruned the cache", || count(&d) == 0);
    // Without `builder.gc`, the same build keeps its cache.
    let plain = Daemon::start();
    plain.load_busybox();
    build(&plain, &dir, &["-t", "g"]).ok();
    assert!(count(&plain) >= 2, "{}", count(&plain));
}

#[test]
fn berth_build_with_dockerignore_outputs_iidfile_and_stdin() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "berth",
        &[
            ("Dockerfile", "FROM busybox\nARG GREETING\nCOPY . /app/\nRUN echo \"$GREETING\" > /app/greeting\n"),
            (".dockerignore", "secret*\n*.md\n!README.md\n"),
            ("secret.key", "do not send\n"),
            ("notes.md", "no\n"),
            ("README.md", "yes\n"),
            ("src/main.txt", "code\n"),
        ],
    );
    let iid = d.root.path().join("iid");
    let local = d.root.path().join("out-local");
    let tarout = d.root.path().join("out.tar");
    let o = d.berth(&[
        "build",
        "-t",
        "bb:1",
        "--build-arg",
        "GREETING=hello berth",
        "--label",
        "k=v",
        "--iidfile",
        iid.to_str().unwrap(),
        "-o",
        &format!("type=local,dest={}", local.display()),
        "--output",
        &format!("type=tar,dest={}", tarout.display()),
        dir.to_str().unwrap(),
    ]);
    let out = o.ok();
    assert!(out.contains("Successfully tagged bb:1"), "{out}");
    let id = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "bb:1"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let files = d
        .docker(&[
            "run",
            "--rm",
            "bb:1",
            "sh",
            "-c",
            "cd /app && find . -type f | sort | tr '\\n' ' '; cat greeting",
        ])
        .ok()
        .to_string();
    assert_eq!(
        files,
        "./.dockerignore ./Dockerfile ./README.md ./greeting ./src/main.txt hello berth\n"
    );
    assert_eq!(
        std::fs::read_to_string(local.join("app/greeting")).unwrap(),
        "hello berth\n"
    );
    assert!(local.join("bin/busybox").exists());
    let listing = {
        let mut c = std::process::Command::new("tar");
        c.arg("-tf").arg(&tarout);
        berth_tests::run(c, None).ok().to_string()
    };
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "app/greeting"),
        "{listing}"
    );
    // A Dockerfile on stdin, -q prints only the ID; a failure exits 1.
    let o = d.berth_in(
        &["build", "-q", "-t", "bb:stdin", "-"],
        b"FROM busybox\nRUN echo piped > /p\n",
    );
    assert!(o.ok().trim().starts_with("sha256:"), "{o:?}");
    assert_eq!(d.run_rm(&["bb:stdin", "cat", "/p"]), "piped\n");
    let o = d.berth_in(&["build", "-"], b"FROM busybox\nRUN false\n");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("did not complete successfully: exit code: 1"),
        "{o:?}"
    );
}

/// A static HTTP server on loopback over `dir` (python's http.server).
struct Http {
    child: std::process::Child,
    port: u16,
}

impl Http {
    fn serve(dir: &Path) -> Http {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Http { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let mut c = std::process::Command::new("git");
    c.args([
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "-c",
        "init.defaultBranch=main",
    ])
    .args(args)
    .current_dir(dir);
    berth_tests::run(c, None).ok();
}

#[test]
fn remote_contexts_and_add_from_urls_on_a_local_server() {
    let d = Daemon::start();
    d.load_busybox();
    let web = d.root.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    // A git repository served over (dumb) HTTP, with a tag and a subdirectory.
    let work = d.root.path().join("repo");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("sub/Dockerfile"), "FROM busybox\nCOPY msg /msg\n").unwrap();
    std::fs::write(work.join("sub/msg"), "from git\n").unwrap();
    std::fs::write(work.join("top.txt"), "top\n").unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "one"]);
    git(&work, &["tag", "v1"]);
    git(
        &web,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
    git(&web.join("repo.git"), &["update-server-info"]);
    // A tarball context and a plain Dockerfile.
    {
        let f = std::fs::File::create(web.join("ctx.tar.gz")).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut b = tar::Builder::new(gz);
        for (name, data) in [
            ("Dockerfile", &b"FROM busybox\nCOPY f /f\n"[..]),
            ("f", b"from tarball\n"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }
    std::fs::write(
        web.join("plain.Dockerfile"),
        "FROM busybox\nRUN echo plain > /p\n",
    )
    .unwrap();
    std::fs::write(web.join("data.txt"), "downloaded\n").unwrap();
    let http = Http::serve(&web);
    let py = |remote: &str, tag: &str| {
        docker_py(
            &d,
            &format!("img, _ = client.images.build(path={remote:?}, tag={tag:?})\nprint(img.id)\n"),
        )
    };
    py(&format!("{}#v1:sub", http.url("repo.git")), "remote:git").ok();
    assert_eq!(d.run_rm(&["remote:git", "cat", "/msg"]), "from git\n");
    py(&http.url("ctx.tar.gz"), "remote:tar").ok();
    assert_eq!(d.run_rm(&["remote:tar", "cat", "/f"]), "from tarball\n");
    py(&http.url("plain.Dockerfile"), "remote:plain").ok();
    assert_eq!(d.run_rm(&["remote:plain", "cat", "/p"]), "plain\n");
    // berth build with a URL: the daemon fetches it.
    d.berth(&[
        "build",
        "-q",
        "-t",
        "remote:berth",
        &format!("{}#v1:sub", http.url("repo.git")),
    ])
    .ok();
    assert_eq!(d.run_rm(&["remote:berth", "cat", "/msg"]), "from git\n");
    // ADD from a URL (mode 600, checksum checked) and from a repository.
    let sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"downloaded\n"))
    };
    let dir = d.files(
        "addurl",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\n\
                 ADD --checksum=sha256:{sum} {data} /dl/\n\
                 ADD {repo} /src\n\
                 ADD --keep-git-dir=true {repo}#v1 /withgit\n",
                data = http.url("data.txt"),
                repo = http.url("repo.git"),
            ),
        )],
    );
    build(&d, &dir, &["-t", "addurl"]).ok();
    assert_eq!(
        d.run_rm(&["addurl", "sh", "-c", "stat -c %a /dl/data.txt; cat /dl/data.txt /src/top.txt; test -d /src/.git || echo nogit; test -d /withgit/.git && echo git"]),
        "600\ndownloaded\ntop\nnogit\ngit\n"
    );
    let bad = d.files(
        "badsum",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD --checksum=sha256:{} {} /x\n",
                "0".repeat(64),
                http.url("data.txt")
            ),
        )],
    );
    let o = build(&d, &bad, &[]);
    assert!(o.stderr.contains("digest mismatch"), "{o:?}");
}

#[test]
fn contexts_compressed_with_gzip_bzip2_and_xz() {
    let d = Daemon::start();
    d.load_busybox();
    let o = docker_py(
        &d,
        "import io, tarfile, gzip, bz2, lzma\n\
         buf = io.BytesIO()\n\
         t = tarfile.open(fileobj=buf, mode='w')\n\
         for name, data in [('Dockerfile', b'FROM busybox\\nCOPY f /f\\n'), ('f', b'compressed\\n')]:\n\
         \x20   i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))\n\
         t.close()\n\
         raw = buf.getvalue()\n\
         for kind, data in [('gzip', gzip.compress(raw)), ('bzip2', bz2.compress(raw)), ('xz', lzma.compress(raw))]:\n\
         \x20   out = list(client.api.build(fileobj=io.BytesIO(data), custom_context=True, tag='z:' + kind, decode=True))\n\
         \x20   print(kind, client.containers.run('z:' + kind, ['cat', '/f'], remove=True).decode(), end='')\n",
    );
    assert_eq!(
        o.ok(),
        "gzip compressed\nbzip2 compressed\nxz compressed\n",
        "{o:?}"
    );
}

/// FROM an image of a registry that wants a login: the docker CLI sends its
/// credentials with the build (X-Registry-Config), and the build pulls with them.
#[test]
fn from_a_private_registry_pulls_with_the_build_credentials() {
    let d = Daemon::start();
    d.load_busybox();
    let (reg, _dir, remote) = berth_tests::private_base(&d);
    let ctx = d.files(
        "private",
        &[(
            "Dockerfile",
            &format!("FROM {remote}\nRUN echo pulled > /p\n"),
        )],
    );
    let o = build(&d, &ctx, &["-t", "frompriv"]);
    assert!(o.ok().contains("Pulling"), "{o:?}");
    assert_eq!(d.run_rm(&["frompriv", "cat", "/p"]), "pulled\n");
    // Without credentials the pull is refused, in the build's words.
    d.docker(&["logout", &reg.host()]).ok();
    d.docker(&["rmi", &remote]).ok();
    let o = build(&d, &ctx, &["--pull", "-t", "frompriv2"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("failed to resolve source metadata"),
        "{o:?}"
    );
}

#[test]
fn cache_survives_a_restart_and_build_options_reach_the_steps() {
    let mut d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "opts",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN cat /proc/sys/kernel/random/uuid > /id\n\
             RUN grep -c builder.example /etc/hosts > /hosts; df -k /dev/shm | tail -1 | awk '{print $2}' > /shm\n\
             RUN ls /sys/class/net > /nets\n",
        )],
    );
    build(
        &d,
        &dir,
        &[
            "-t",
            "o:1",
            "--add-host",
            "builder.example:10.1.2.3",
            "--shm-size",
            "32m",
        ],
    )
    .ok();
    assert_eq!(d.run_rm(&["o:1", "cat", "/hosts", "/shm"]), "1\n32768\n");
    // Resource limits reach the steps' cgroups.
    let limits = d.files(
        "limits",
        &[("Dockerfile", "FROM busybox\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares > /limits\n")],
    );
    build(
        &d,
        &limits,
        &["-t", "o:limits", "--memory", "64m", "--cpu-shares", "512"],
    )
    .ok();
    assert_eq!(d.run_rm(&["o:limits", "cat", "/limits"]), "67108864\n512\n");
    let id1 = d.run_rm(&["o:1", "cat", "/id"]);
    // The cache is in the store: a new berthd uses it.
    assert_eq!(d.stop(), 0);
    d.spawn();
    let o = build(
        &d,
        &dir,
        &[
            "-t",
            "o:2",
            "--add-host",
            "builder.example:10.1.2.3",
            "--shm-size",
            "32m",
        ],
    );
    assert!(o.ok().matches("Using cache").count() >= 2, "{o:?}");
    assert_eq!(d.run_rm(&["o:2", "cat", "/id"]), id1);
    // --network host: the step sees the host's interfaces (this daemon's bridge
    // among them); none: only loopback.
    build(&d, &dir, &["--network", "host", "-t", "o:host"]).ok();
    let nets = d.run_rm(&["o:host", "cat", "/nets"]);
    assert!(nets.lines().any(|l| l == d.bridge), "{nets}");
    build(&d, &dir, &["--network", "none", "-t", "o:none"]).ok();
    assert_eq!(d.run_rm(&["o:none", "cat", "/nets"]), "lo\n");
    let o = build(&d, &dir, &["--network", "container:x"]);
    assert_ne!(o.code, 0, "{o:?}");
}

/// `berth build` sends only what the daemon's kept copy of the context lacks:
/// changed, added and removed files all reach the build, and an unchanged
/// context sends nothing.
#[test]
fn berth_build_keeps_the_context_and_sends_only_changes() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "kept",
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", \"cd /ctx && find . -type f | sort | xargs cat\"]\n"),
            ("a.txt", "a1\n"),
            ("sub/b.txt", "b1\n"),
            ("gone.txt", "gone\n"),
        ],
    );
    let b = |tag: &str| {
        d.berth(&["build", "-q", "-t", tag, dir.to_str().unwrap()])
            .ok()
            .to_string()
    };
    b("k:1");
    let contexts = d.data_root.join("build/contexts");
    let kept: Vec<_> = std::fs::read_dir(&contexts)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(kept.len(), 1);
    let kept = kept[0].path();
    assert_eq!(std::fs::read_to_string(kept.join("a.txt")).unwrap(), "a1\n");
    // Unchanged: the same image, and the kept files were not rewritten.
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&kept.join("sub/b.txt"));
    assert_eq!(b("k:2"), b("k:1"));
    assert_eq!(inode(&kept.join("sub/b.txt")), before);
    // Changed, added, removed.
    std::fs::write(dir.join("a.txt"), "a2\n").unwrap();
    std::fs::write(dir.join("sub/new.txt"), "new\n").unwrap();
    std::fs::remove_file(dir.join("gone.txt")).unwrap();
    b("k:3");
    assert_eq!(d.run_rm(&["k:3"]), "FROM busybox\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", \"cd /ctx && find . -type f | sort | xargs cat\"]\na2\nb1\nnew\n");
    assert!(!kept.join("gone.txt").exists());
    assert_eq!(inode(&kept.join("sub/b.txt")), before);
    // The docker CLI still sends whole contexts; prune drops kept ones.
    d.docker(&["builder", "prune", "-f"]).ok();
    assert!(!kept.exists());
    b("k:4");
    assert_eq!(d.run_rm(&["k:4"]).lines().last(), Some("new"));
}

/// `POST /build/cancel` and a client that leaves both stop the build at once:
/// the running step's container goes, nothing is left.
#[test]
fn a_cancelled_or_abandoned_build_stops_and_leaves_nothing() {
    let d = Daemon::start();
    d.load_busybox();
    let o = docker_py(
        &d,
        "import io, tarfile, json, threading, time\n\
         def ctx():\n\
         \x20   buf = io.BytesIO(); t = tarfile.open(fileobj=buf, mode='w')\n\
         \x20   df = b'FROM busybox\\nRUN echo started; sleep 60\\n'\n\
         \x20   i = tarfile.TarInfo('Dockerfile'); i.size = len(df); t.addfile(i, io.BytesIO(df)); t.close()\n\
         \x20   return buf.getvalue()\n\
         api = client.api\n\
         def start(bid):\n\
         \x20   return api._post(api._url('/build'), params={'buildid': bid, 't': 'never'}, data=ctx(), stream=True,\n\
         \x20                    headers={'Content-Type': 'application/x-tar'})\n\
         def wait_started(lines):\n\
         \x20   for l in lines:\n\
         \x20       if b'started\\\\n' in l and b'Step' not in l: return\n\
         r = start('b1')\n\
         lines = r.iter_lines()\n\
         wait_started(lines)\n\
         t0 = time.time()\n\
         api._post(api._url('/build/cancel'), params={'id': 'b1'})\n\
         rest = [json.loads(l) for l in lines if l]\n\
         print('cancel:', rest[-1].get('error'), round(time.time() - t0) < 10)\n\
         r = start('b3')\n\
         lines = r.iter_lines()\n\
         for l in lines:\n\
         \x20   if b'Step 2/2' in l: break\n\
         api._post(api._url('/build/cancel'), params={'id': 'b3'})\n\
         rest = [json.loads(l) for l in lines if l]\n\
         print('early:', rest[-1].get('error'))\n\
         r = start('b2')\n\
         lines = r.iter_lines()\n\
         wait_started(lines)\n\
         r.close()\n\
         for _ in range(100):\n\
         \x20   if not api.containers(all=True) and not api.images(filters={'dangling': True}): break\n\
         \x20   time.sleep(0.1)\n\
         print('left:', len(api.containers(all=True)), len(api.images(filters={'dangling': True})))\n",
    );
    assert_eq!(
        o.ok(),
        "cancel: context canceled True\nearly: context canceled\nleft: 0 0\n",
        "{o:?}"
    );
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "");
}

/// On a terminal, `berth build` draws BuildKit's live view: the steps, CACHED,
/// their durations, and the output of the step running.
#[test]
fn berth_build_live_view_on_a_terminal() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "live",
        &[(
            "Dockerfile",
            "FROM busybox AS app\nENV A=1\nRUN echo first-line && sleep 0.3 && echo second-line\nCOPY Dockerfile /\n",
        )],
    );
    let env = [("BERTH_HOST", d.host())];
    let mut t = berth_tests::PtyCommand::spawn(
        &berth_tests::bin("berth"),
        &["build", "-t", "live:1", dir.to_str().unwrap()],
        &env,
        (40, 120),
    );
    t.expect("[+] Building");
    t.expect("[app 3/4] RUN echo first-line");
    t.expect("first-line");
    t.expect("naming to live:1");
    assert_eq!(t.wait(), 0);
    // Again: every step CACHED.
    let mut t = berth_tests::PtyCommand::spawn(
        &berth_tests::bin("berth"),
        &["build", "-t", "live:2", dir.to_str().unwrap()],
        &env,
        (40, 120),
    );
    t.expect("CACHED [app 3/4] RUN echo first-line");
    t.expect("CACHED [app 4/4] COPY Dockerfile /");
    assert_eq!(t.wait(), 0);
    // Not a terminal: plain text.
    let o = d.berth(&["build", "--no-cache", dir.to_str().unwrap()]);
    assert!(o.ok().contains("Step 3/4 : RUN echo first-line"), "{o:?}");
    assert!(o.stdout.contains("second-line"), "{o:?}");
}

#[test]
fn copy_globs_parents_specific_dockerignore_and_script_heredocs() {
    let d = Daemon::start();
    d.load_busybox();
    let dir = d.files(
        "globs",
        &[
            (
                "app.Dockerfile",
                "FROM busybox\n\
                 COPY *.txt /flat/\n\
                 COPY src/*/main.c /mains/\n\
                 COPY --parents src/*/main.c /tree/\n\
                 COPY con?ig.* /cfg/\n\
                 RUN <<EOF\n\
                 #!/bin/sh -e\n\
                 echo \"script $0\" > /script\n\
                 EOF\n",
            ),
            ("app.Dockerfile.dockerignore", "skip.txt\n"),
            (".dockerignore", "a.txt\n"),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("skip.txt", "skip\n"),
            ("src/one/main.c", "1\n"),
            ("src/two/main.c", "2\n"),
            ("src/two/other.c", "x\n"),
            ("config.yml", "c\n"),
        ],
    );
    let o = d.berth(&[
        "build",
        "-q",
        "-f",
        dir.join("app.Dockerfile").to_str().unwrap(),
        "-t",
        "globs",
        dir.to_str().unwrap(),
    ]);
    o.ok();
    let sh = |s: &str| {
        d.docker(&["run", "--rm", "globs", "sh", "-c", s])
            .ok()
            .to_string()
    };
    // The Dockerfile's own ignore file wins over .dockerignore.
    assert_eq!(sh("ls /flat | tr '\\n' ' '"), "a.txt b.txt ");
    assert_eq!(sh("ls /mains"), "main.c\n");
    assert_eq!(
        sh("cd /tree && find . -type f | sort | tr '\\n' ' '"),
        "./src/one/main.c ./src/two/main.c "
    );
    assert_eq!(sh("ls /cfg"), "config.yml\n");
    assert_eq!(sh("cat /script"), "script /dev/pipes/EOF\n");
}

/// `--cache-from` an image berth built elsewhere (saved and loaded): its steps
/// stand for this build's where the keys match, on a daemon with no cache.
#[test]
fn cache_from_an_image_built_elsewhere() {
    let a = Daemon::start();
    let b = Daemon::start();
    let busybox = std::fs::read(a.busybox_archive("busybox:latest")).unwrap();
    a.docker_in(&["load"], &busybox).ok();
    b.docker_in(&["load"], &busybox).ok();
    let files: &[(&str, &str)] = &[
        (
            "Dockerfile",
            "FROM busybox\nCOPY f /f\nRUN cat /proc/sys/kernel/random/uuid > /id\nENV X=1\n",
        ),
        ("f", "content\n"),
    ];
    let da = a.files("cf", files);
    build(&a, &da, &["-t", "cf:1"]).ok();
    let id_a = a.run_rm(&["cf:1", "cat", "/id"]);
    let saved = a.root.path().join("cf.tar");
    a.docker(&["save", "-o", saved.to_str().unwrap(), "cf:1"])
        .ok();
    b.docker(&["load", "-i", saved.to_str().unwrap()]).ok();
    let db = b.files("cf", files);
    let o = build(&b, &db, &["--cache-from", "cf:1", "-t", "cf:2"]);
    assert_eq!(
        o.ok().matches("Using cache (from --cache-from)").count(),
        2,
        "{o:?}"
    );
    assert_eq!(b.run_rm(&["cf:2", "cat", "/id"]), id_a);
    // Without it, or with other content, the step runs.
    std::fs::write(db.join("f"), "changed\n").unwrap();
    let o = build(&b, &db, &["--cache-from", "cf:1", "-t", "cf:3"]);
    assert_eq!(o.ok().matches("Using cache").count(), 0, "{o:?}");
    assert_ne!(b.run_rm(&["cf:3", "cat", "/id"]), id_a);
}

/// The seed documents' Dockerfiles, adapted to busybox (no package manager, no
/// internet): the tomcat-style chains of ENV and WORKDIR, the node-style stages
/// with a cache mount and --target, the golang-style builder stage.
#[test]
fn seed_dockerfiles_adapted_to_busybox() {
    let d = Daemon::start();
    d.load_busybox();
    // A "tomcat" tarball with one top-level directory, as Apache ships it.
    let tomcat = {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            (
                "apache-tomcat-8.0.41/bin/catalina.sh",
                &b"#!/bin/sh\necho catalina running\n"[..],
            ),
            ("apache-tomcat-8.0.41/RELEASE", b"8.0.41\n"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.into_inner().unwrap()
    };
    let dir = d.root.path().join("ctx/tomcat");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tomcat.tar"), &tomcat).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\n\
         LABEL \"maintainer\"=\"dtimofeev@example.com\"\n\
         LABEL \"appserver\"=\"Tomcat\"\n\
         ENV CATALINA_HOME /usr/local/tomcat\n\
         ENV PATH $CATALINA_HOME/bin:$PATH\n\
         RUN mkdir -p \"$CATALINA_HOME\"\n\
         WORKDIR $CATALINA_HOME\n\
         ENV TOMCAT_NATIVE_LIBDIR $CATALINA_HOME/native-jni-lib\n\
         ENV LD_LIBRARY_PATH ${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$TOMCAT_NATIVE_LIBDIR\n\
         ENV TOMCAT_MAJOR 8\n\
         ENV TOMCAT_VERSION 8.0.41\n\
         COPY tomcat.tar /tmp/\n\
         RUN tar -xf /tmp/tomcat.tar --strip-components=1 \\\n  && rm /tmp/tomcat.tar*\n\
         EXPOSE 8080\n\
         CMD [\"catalina.sh\", \"run\"]\n",
    )
    .unwrap();
    build(&d, &dir, &["-t", "tomcat"]).ok();
    assert_eq!(d.run_rm(&["tomcat"]), "catalina running\n");
    assert_eq!(
        d.run_rm(&["tomcat", "sh", "-c", "pwd; echo $LD_LIBRARY_PATH; cat RELEASE; echo $PATH"]),
        "/usr/local/tomcat\n/usr/local/tomcat/native-jni-lib\n8.0.41\n/usr/local/tomcat/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    let labels = d
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"maintainer\"}} {{index .Config.Labels \"appserver\"}}",
            "tomcat",
        ])
        .ok()
        .to_string();
    assert_eq!(labels, "dtimofeev@example.com Tomcat\n");
    let history = d
        .docker(&[
            "history",
            "--format",
            "{{.ID}} {{.CreatedBy}}",
            "--no-trunc",
            "tomcat",
        ])
        .ok()
        .to_string();
    assert!(
        history
            .lines()
            .any(|l| l == "<missing> ENV TOMCAT_VERSION=8.0.41"),
        "{history}"
    );
    assert!(
        history
            .lines()
            .any(|l| l == "<missing> WORKDIR /usr/local/tomcat"),
        "{history}"
    );

    // node-style: a base stage, dev and production stages, a cache mount.
    let node = d.files(
        "node",
        &[
            (
                "Dockerfile",
                "FROM busybox AS base\n\
                 LABEL org.opencontainers.image.authors=\"sid@example.com\"\n\
                 RUN echo node:x:1500:1500::/home/node:/bin/sh >> /etc/passwd && echo node:x:1500: >> /etc/group\n\
                 WORKDIR /usr/src/app\n\
                 COPY package*.json ./\n\
                 FROM base AS dev\n\
                 RUN --mount=type=cache,target=/usr/src/app/.npm \\\n  echo dev-install >> /usr/src/app/.npm/log && cp /usr/src/app/.npm/log installed\n\
                 COPY . .\n\
                 CMD [\"cat\", \"installed\"]\n\
                 FROM base AS production\n\
                 ENV NODE_ENV production\n\
                 RUN --mount=type=cache,target=/usr/src/app/.npm \\\n  echo prod-install >> /usr/src/app/.npm/log && cp /usr/src/app/.npm/log installed\n\
                 USER node\n\
                 COPY --chown=node:node ./src/ .\n\
                 EXPOSE 3000\n\
                 CMD [\"sh\", \"-c\", \"id -un; stat -c %U index.js; echo $NODE_ENV; cat installed package.json package-lock.json\"]\n",
            ),
            ("package.json", "{\"name\":\"app\"}\n"),
            ("package-lock.json", "{}\n"),
            ("src/index.js", "console.log('hi')\n"),
        ],
    );
    build(&d, &node, &["--target", "dev", "-t", "node:dev"]).ok();
    build(&d, &node, &["--target", "production", "-t", "node:prod"]).ok();
    assert_eq!(d.run_rm(&["node:dev"]), "dev-install\n");
    // The cache mount is shared by both stages' steps (same target, same id).
    assert_eq!(
        d.run_rm(&["node:prod"]),
        "node\nnode\nproduction\ndev-install\nprod-install\n{\"name\":\"app\"}\n{}\n"
    );

    // golang-style: a builder stage, its product copied into a small image.
    let golang = d.files(
        "golang",
        &[
            (
                "Dockerfile",
                "FROM busybox as builder\n\
                 WORKDIR /go/src/github.com/alexellis/href-counter/\n\
                 COPY app.go .\n\
                 RUN (echo '#!/bin/sh'; sed 's/^/echo /' app.go) > app && chmod +x app\n\
                 # use a small image\n\
                 FROM busybox:latest\n\
                 WORKDIR /root/\n\
                 # copy from builder container\n\
                 COPY --from=builder /go/src/github.com/alexellis/href-counter/app .\n\
                 CMD [\"./app\"]\n",
            ),
            ("app.go", "counted 3 hrefs\n"),
        ],
    );
    build(&d, &golang, &["-t", "href-counter"]).ok();
    assert_eq!(d.run_rm(&["href-counter"]), "counted 3 hrefs\n");
}
