//! berth: Docker's command line for berthd.

mod build;
mod client;
mod containers;
mod context;
mod cp;
mod create;
mod exec;
mod format;
mod groups;
mod images;
mod network;
mod plugin;
mod plugins;
mod progress;
mod registry;
mod session;
mod stats;
mod system;
mod terminal;
mod volume;

use anyhow::Result;
use clap::{Parser, Subcommand};
use client::{enc, Client};
use containers::{CreateOpts, LogsOpts, PsOpts};
use images::ImagesOpts;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A fast, safe container engine with Docker's commands"
)]
struct Cli {
    /// Daemon socket to connect to (also BERTH_HOST, DOCKER_HOST)
    #[arg(short = 'H', long = "host", global = true)]
    host: Option<String>,
    /// Name of the docker context to use (also DOCKER_CONTEXT, or `docker context use`)
    #[arg(long = "context", id = "docker_context", global = true)]
    docker_context: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long, global = true)]
    tls: bool,
    /// Use TLS and verify the remote (also DOCKER_TLS_VERIFY)
    #[arg(long, global = true)]
    tlsverify: bool,
    /// Trust certs signed only by this CA (default DOCKER_CERT_PATH/ca.pem)
    #[arg(long, global = true)]
    tlscacert: Option<std::path::PathBuf>,
    /// Path to TLS certificate file (default DOCKER_CERT_PATH/cert.pem)
    #[arg(long, global = true)]
    tlscert: Option<std::path::PathBuf>,
    /// Path to TLS key file (default DOCKER_CERT_PATH/key.pem)
    #[arg(long, global = true)]
    tlskey: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run {
        /// Run container in background and print container ID
        #[arg(short = 'd', long)]
        detach: bool,
        /// Proxy received signals to the process
        #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1,
              default_missing_value = "true", action = clap::ArgAction::Set)]
        sig_proxy: bool,
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        #[command(flatten)]
        opts: CreateOpts,
    },
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create {
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        #[command(flatten)]
        opts: CreateOpts,
    },
    /// Start one or more stopped containers
    Start {
        /// Attach STDOUT/STDERR and forward signals
        #[arg(short = 'a', long)]
        attach: bool,
        /// Attach container's STDIN
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Override the key sequence for detaching a container
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop one or more running containers
    Stop {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<i64>,
        /// Signal to send to the container
        #[arg(short = 's', long)]
        signal: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers
    Kill {
        /// Signal to send to the container
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        /// Force the removal of a running container (uses SIGKILL)
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove anonymous volumes associated with the container
        #[arg(short = 'v', long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps(PsOpts),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsOpts),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpOpts),
    /// List port mappings or a specific mapping for the container
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]
        private: Option<String>,
    },
    /// Manage contexts
    #[command(subcommand)]
    Context(context::ContextCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// Manage plugins
    #[command(subcommand)]
    Plugin(plugins::PluginCmd),
    /// Download an image from a registry
    Pull {
        /// Set platform if server is multi-platform capable
        #[arg(long)]
        platform: Option<String>,
        /// Suppress verbose output
        #[arg(short = 'q', long)]
        quiet: bool,
        name: String,
    },
    /// Upload an image to a registry
    Push {
        /// Suppress verbose output
        #[arg(short = 'q', long)]
        quiet: bool,
        name: String,
    },
    /// Authenticate to a registry
    Login {
        /// Username
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Password
        #[arg(short = 'p', long)]
        password: Option<String>,
        /// Take the password from stdin
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        server: Option<String>,
    },
    /// Log out from a registry
    Logout { server: Option<String> },
    /// Fetch the logs of a container
    Logs(LogsOpts),
    /// Return low-level information on objects
    Inspect {
        /// Format output using a custom template
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Only inspect objects of the given type (container, image)
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Execute a command in a running container
    Exec(exec::ExecOpts),
    /// Attach local standard input, output, and error streams to a running container
    Attach(exec::AttachOpts),
    /// Pause all processes within one or more containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Update configuration of one or more containers
    Update(containers::UpdateOpts),
    /// Display the running processes of a container
    Top {
        container: String,
        /// ps options
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Export a container's filesystem as a tar archive
    Export {
        /// Write to a file, instead of STDOUT
        #[arg(short = 'o', long)]
        output: Option<String>,
        container: String,
    },
    /// Create a new image from a container's changes
    Commit {
        /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
        #[arg(short = 'a', long)]
        author: Option<String>,
        /// Apply Dockerfile instruction to the created image
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
        /// Commit message
        #[arg(short = 'm', long)]
        message: Option<String>,
        /// Pause container during commit
        #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
        pause: bool,
        container: String,
        reference: Option<String>,
    },
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Build an image from a Dockerfile
    Build(build::BuildOpts),
    /// List images
    Images(ImagesOpts),
    /// Load an image from a tar archive or STDIN
    Load {
        /// Read from tar archive file, instead of STDIN
        #[arg(short = 'i', long)]
        input: Option<String>,
        /// Suppress the load output
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save {
        /// Write to a file, instead of STDOUT
        #[arg(short = 'o', long)]
        output: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Import the contents from a tarball to create a filesystem image
    Import {
        /// Apply Dockerfile instruction to the created image
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
        /// Set commit message for imported image
        #[arg(short = 'm', long)]
        message: Option<String>,
        /// A file, or - for STDIN
        source: String,
        reference: Option<String>,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Remove one or more images
    Rmi {
        /// Force removal of the image
        #[arg(short = 'f', long)]
        force: bool,
        /// Do not delete untagged parents
        #[arg(long = "no-prune")]
        no_prune: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show the history of an image
    History {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        #[arg(long)]
        format: Option<String>,
        image: String,
    },
    /// Show the berth version information
    Version {
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Display system-wide information
    Info {
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Manage berth
    #[command(subcommand)]
    System(SystemCmd),
    /// Inspect changes to files or directories on a container's filesystem
    Diff { container: String },
    /// Get real time events from the server
    Events(EventsOpts),
}

#[derive(Debug, Subcommand)]
enum SystemCmd {
    /// Proxy the stdio stream to the daemon connection (what `-H ssh://` runs
    /// on the remote side)
    #[command(name = "dial-stdio")]
    DialStdio,
    /// Show berth disk usage
    Df {
        /// Show detailed information on space usage
        #[arg(short = 'v', long)]
        verbose: bool,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
    },
    /// Get real time events from the server
    Events(EventsOpts),
    /// Remove unused data
    Prune {
        /// Remove all unused images not just dangling ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Prune anonymous volumes
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "label=<key>=<value>")
        #[arg(long = "filter")]
        filters: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct EventsOpts {
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filters: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

async fn simple(c: &Client, names: &[String], path: impl Fn(&str) -> String) -> Result<i32> {
    containers::each(names, true, |n| {
        let p = path(&enc(&n));
        async move { c.post(&p).await.map(|_| ()) }
    })
    .await
}

async fn dispatch(cli: Cli) -> Result<i32> {
    // Contexts are the CLI's own files: no daemon needed.
    if let Cmd::Context(cmd) = cli.cmd {
        return context::context(cmd);
    }
    let tls = client::TlsOpts {
        tls: cli.tls,
        verify: cli.tlsverify,
        ca: cli.tlscacert.clone(),
        cert: cli.tlscert.clone(),
        key: cli.tlskey.clone(),
    };
    let c = Client::resolve(cli.host.as_deref(), cli.docker_context.as_deref(), &tls)?;
    match cli.cmd {
        Cmd::Run {
            detach,
            sig_proxy,
            opts,
            ..
        } => containers::run(&c, &opts, detach, sig_proxy).await,
        Cmd::Create { opts, .. } => match containers::create(&c, &opts, true).await {
            Ok(id) => {
                println!("{id}");
                Ok(0)
            }
            Err(e) => {
                eprintln!("berth: {e}");
                Ok(1)
            }
        },
        Cmd::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => {
            if attach || interactive {
                let [name] = containers.as_slice() else {
                    anyhow::bail!("you cannot start and attach multiple containers at once");
                };
                return exec::start_attached(&c, name, interactive, detach_keys.as_deref()).await;
            }
            simple(&c, &containers, |n| format!("/containers/{n}/start")).await
        }
        Cmd::Stop {
            time,
            signal,
            containers,
        } => {
            let mut q = String::new();
            if let Some(t) = time {
                q.push_str(&format!("&t={t}"));
            }
            if let Some(s) = signal {
                q.push_str(&format!("&signal={}", enc(&s)));
            }
            simple(&c, &containers, |n| format!("/containers/{n}/stop?{q}")).await
        }
        Cmd::Kill { signal, containers } => {
            let s = enc(&signal);
            simple(&c, &containers, |n| {
                format!("/containers/{n}/kill?signal={s}")
            })
            .await
        }
        Cmd::Restart { time, containers } => {
            let q = time.map(|t| format!("t={t}")).unwrap_or_default();
            simple(&c, &containers, |n| format!("/containers/{n}/restart?{q}")).await
        }
        Cmd::Rm {
            force,
            volumes,
            containers,
        } => {
            containers::each(&containers, true, |n| {
                let p = format!(
                    "/containers/{}?force={}&v={}",
                    enc(&n),
                    u8::from(force),
                    u8::from(volumes)
                );
                let c = &c;
                async move { c.delete(&p).await.map(|_| ()) }
            })
            .await
        }
        Cmd::Ps(o) => containers::ps(&c, &o).await,
        Cmd::Stats(o) => stats::stats(&c, &o).await,
        Cmd::Context(cmd) => context::context(cmd),
        Cmd::Cp(o) => cp::cp(&c, &o).await,
        Cmd::Port { container, private } => network::port(&c, &container, private.as_deref())
            .await
            .map(|()| 0),
        Cmd::Network(n) => network::network(&c, n).await.map(|()| 0),
        Cmd::System(SystemCmd::DialStdio) => c.dial_stdio().await.map(|()| 0),
        Cmd::System(SystemCmd::Df { verbose, format }) => {
            system::df(&c, verbose, format.as_deref()).await
        }
        Cmd::System(SystemCmd::Events(e)) | Cmd::Events(e) => {
            system::events(
                &c,
                e.since.as_deref(),
                e.until.as_deref(),
                &e.filters,
                e.format.as_deref(),
            )
            .await
        }
        Cmd::Diff { container } => system::diff(&c, &container).await,
        Cmd::System(SystemCmd::Prune {
            all,
            volumes,
            force,
            filters,
        }) => system::prune(&c, all, volumes, force, &filters).await,
        Cmd::Volume(v) => volume::volume(&c, v).await,
        Cmd::Plugin(p) => plugins::plugin(&c, p).await,
        Cmd::Pull {
            platform,
            quiet,
            name,
        } => registry::pull(&c, &name, platform.as_deref(), quiet).await,
        Cmd::Push { quiet, name } => registry::push(&c, &name, quiet).await,
        Cmd::Login {
            username,
            password,
            password_stdin,
            server,
        } => {
            registry::login(
                &c,
                server.as_deref(),
                username.as_deref(),
                password.as_deref(),
                password_stdin,
            )
            .await
        }
        Cmd::Logout { server } => registry::logout(server.as_deref()),
        Cmd::Logs(o) => containers::logs(&c, &o).await,
        Cmd::Inspect {
            format,
            kind,
            names,
        } => containers::inspect(&c, &names, format.as_deref(), kind.as_deref()).await,
        Cmd::Wait { containers } => containers::wait(&c, &containers).await,
        Cmd::Exec(o) => exec::exec(&c, &o).await,
        Cmd::Export { output, container } => {
            images::write_stream(
                &c,
                &format!("/containers/{}/export", enc(&container)),
                output.as_deref(),
            )
            .await
        }
        Cmd::Commit {
            author,
            changes,
            message,
            pause,
            container,
            reference,
        } => {
            let mut q = format!(
                "/commit?container={}&pause={}",
                enc(&container),
                u8::from(pause)
            );
            if let Some(r) = reference {
                q.push_str(&format!("&repo={}", enc(&r)));
            }
            if let Some(a) = author {
                q.push_str(&format!("&author={}", enc(&a)));
            }
            if let Some(m) = message {
                q.push_str(&format!("&comment={}", enc(&m)));
            }
            for ch in changes {
                q.push_str(&format!("&changes={}", enc(&ch)));
            }
            let v: Value = {
                let resp = c.post(&q).await?;
                let body = http_body_util::BodyExt::collect(resp.into_body())
                    .await?
                    .to_bytes();
                serde_json::from_slice(&body)?
            };
            println!("{}", v["Id"].as_str().unwrap_or_default());
            Ok(0)
        }
        Cmd::Pause { containers } => {
            simple(&c, &containers, |n| format!("/containers/{n}/pause")).await
        }
        Cmd::Unpause { containers } => {
            simple(&c, &containers, |n| format!("/containers/{n}/unpause")).await
        }
        Cmd::Update(o) => containers::update(&c, &o).await,
        Cmd::Rename {
            container,
            new_name,
        } => {
            c.post(&format!(
                "/containers/{}/rename?name={}",
                enc(&container),
                enc(&new_name)
            ))
            .await?;
            Ok(0)
        }
        Cmd::Top { container, ps_args } => {
            let v: Value = c
                .get_json(&format!(
                    "/containers/{}/top?ps_args={}",
                    enc(&container),
                    enc(&ps_args.join(" "))
                ))
                .await?;
            let mut rows = vec![v["Titles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(format::to_text)
                .collect::<Vec<_>>()];
            for p in v["Processes"].as_array().into_iter().flatten() {
                rows.push(
                    p.as_array()
                        .into_iter()
                        .flatten()
                        .map(format::to_text)
                        .collect(),
                );
            }
            print!("{}", format::table(&rows));
            Ok(0)
        }
        Cmd::Attach(o) => exec::attach(&c, &o).await,
        Cmd::Build(o) => build::build(&c, &o).await,
        Cmd::Images(o) => images::images(&c, &o).await,
        Cmd::Load { input, quiet } => images::load(&c, input.as_deref(), quiet).await,
        Cmd::Save { output, images } => images::save(&c, &images, output.as_deref()).await,
        Cmd::Import {
            changes,
            message,
            source,
            reference,
        } => {
            images::import(
                &c,
                &source,
                reference.as_deref(),
                &changes,
                message.as_deref(),
            )
            .await
        }
        Cmd::Tag { source, target } => images::tag(&c, &source, &target).await,
        Cmd::Rmi {
            force,
            no_prune,
            images,
        } => images::rmi(&c, &images, force, no_prune).await,
        Cmd::History {
            quiet,
            no_trunc,
            format,
            image,
        } => images::history(&c, &image, quiet, no_trunc, format.as_deref()).await,
        Cmd::Version { format } => {
            let server: Value = c.get_json("/version").await?;
            let client = serde_json::json!({
                "Version": env!("CARGO_PKG_VERSION"),
                "ApiVersion": berth_api::API_VERSION,
                "Os": "linux",
                "Arch": std::env::consts::ARCH,
            });
            let v = serde_json::json!({ "Client": client, "Server": server });
            match format {
                Some(f) => println!("{}", format::Template::parse(&f)?.render(&v)?),
                None => {
                    println!(
                        "Client:\n Version:\t{}\n API version:\t{}\n",
                        client["Version"].as_str().unwrap_or(""),
                        berth_api::API_VERSION
                    );
                    println!(
                        "Server: berth\n Engine:\n  Version:\t{}\n  API version:\t{} (minimum version {})\n  OS/Arch:\t{}/{}\n  Kernel:\t{}",
                        server["Version"].as_str().unwrap_or(""),
                        server["ApiVersion"].as_str().unwrap_or(""),
                        server["MinAPIVersion"].as_str().unwrap_or(""),
                        server["Os"].as_str().unwrap_or(""),
                        server["Arch"].as_str().unwrap_or(""),
                        server["KernelVersion"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(0)
        }
        Cmd::Info { format } => {
            let i: Value = c.get_json("/info").await?;
            match format {
                Some(f) => println!("{}", format::Template::parse(&f)?.render(&i)?),
                None => {
                    let s = |k: &str| format::to_text(&i[k]);
                    println!("Server:");
                    println!(
                        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}",
                        s("Containers"),
                        s("ContainersRunning"),
                        s("ContainersPaused"),
                        s("ContainersStopped")
                    );
                    println!(
                        " Images: {}\n Server Version: {}\n Storage Driver: {}",
                        s("Images"),
                        s("ServerVersion"),
                        s("Driver")
                    );
                    println!(
                        " Logging Driver: {}\n Cgroup Driver: {}\n Cgroup Version: {}",
                        s("LoggingDriver"),
                        s("CgroupDriver"),
                        s("CgroupVersion")
                    );
                    println!(" Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}", s("KernelVersion"), s("OperatingSystem"), s("OSType"), s("Architecture"));
                    println!(
                        " CPUs: {}\n Total Memory: {}\n Name: {}\n ID: {}\n Docker Root Dir: {}",
                        s("NCPU"),
                        s("MemTotal"),
                        s("Name"),
                        s("ID"),
                        s("DockerRootDir")
                    );
                    println!(
                        " Debug Mode: {}\n Live Restore Enabled: {}",
                        s("Debug"),
                        s("LiveRestoreEnabled")
                    );
                }
            }
            Ok(0)
        }
    }
}

fn main() -> std::process::ExitCode {
    // Docker's command groups (`berth container ls`) are the top-level commands.
    let mut args: Vec<String> = std::env::args().collect();
    if let Some((i, _)) = plugin::command_word(&args) {
        match groups::rewrite(args, i) {
            Ok(a) => args = a,
            Err(e) => {
                eprintln!("berth: {e}");
                return std::process::ExitCode::from(125);
            }
        }
    }
    // A command berth does not have, but a docker CLI plugin provides
    // (`berth compose ...`): the plugin runs, pointed at berth's daemon.
    if let Some((i, word)) = plugin::command_word(&args) {
        use clap::CommandFactory;
        let ours = Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word));
        if let Some(p) = (!ours).then(|| plugin::find(word)).flatten() {
            let before = &args[..i];
            let target = match (
                plugin::global_value(before, "--host", Some("-H")),
                plugin::global_value(before, "--context", None),
            ) {
                (Some(_), Some(_)) => {
                    eprintln!(
                        "berth: conflicting options: either specify --host or --context, not both"
                    );
                    return std::process::ExitCode::from(125);
                }
                (None, Some(c)) => plugin::Target::Context(c),
                (h, None) => plugin::Target::Host(client::Client::host(h.as_deref())),
            };
            let e = plugin::exec(&p, &target, &args[i..]);
            eprintln!("berth: running {}: {e}", p.display());
            return std::process::ExitCode::from(126);
        }
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return std::process::ExitCode::SUCCESS;
            }
            // Docker exits 125 when its own flags are wrong.
            let _ = e.print();
            return std::process::ExitCode::from(125);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = rt.block_on(dispatch(cli));
    // A blocking read of our stdin (an attached terminal) may still be pending:
    // leave it behind rather than wait for input that will not come.
    rt.shutdown_background();
    match result {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("{e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
