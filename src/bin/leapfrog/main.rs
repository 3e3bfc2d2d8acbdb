//! The `leapfrog` command: publish releases, serve them, check for updates,
//! and run the demo. Installed as `demo` (the demo app), the same binary is
//! the small app that updates itself.

// The command talks to its user; the library never prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod check;
mod delta;
mod demo;
mod logger;
mod publish;
mod serve;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `check`: up to date.
    Ok = 0,
    /// Something failed; the message says what.
    Error = 1,
    /// `check` found a newer version.
    UpdateAvailable = 10,
    /// `check` found a newer version that the running one must update to.
    UpdateRequired = 11,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

#[derive(Parser)]
#[command(
    name = "leapfrog",
    version,
    about = "Self-updating desktop programs from a static host"
)]
struct Cli {
    /// Say more about what happens.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack APP_DIR as a release and add it to DIR/versions.txt.
    Publish {
        /// The release tree.
        app_dir: PathBuf,
        /// The program's name.
        #[arg(long)]
        program: String,
        /// The release's version (semver, newer than any published).
        #[arg(long)]
        version: String,
        /// The repository folder to upload afterwards.
        #[arg(long)]
        repo: PathBuf,
        /// A release notes file.
        #[arg(long)]
        notes: Option<PathBuf>,
        /// The channel to publish on (default: stable).
        #[arg(long)]
        channel: Option<String>,
        /// Offer the release to this share of installs at first (0 to 100);
        /// raise it later with `leapfrog rollout`.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        rollout: Option<u8>,
        /// Or a signed schedule, e.g. 10%@2026-12-07T00:00:00Z,50%@+3d,100%@+7d
        /// (RFC 3339 times or durations from now). A step reaches the apps
        /// when versions.txt is signed after its time: run `leapfrog
        /// refresh` at least as often.
        #[arg(long, conflicts_with = "rollout")]
        rollout_schedule: Option<String>,
        /// Installs below this version must update (no "Later"); never
        /// lower than a floor an earlier release set.
        #[arg(long)]
        min_version: Option<String>,
        /// Offer it to every install whatever the rollout, as a required update.
        #[arg(long)]
        critical: bool,
        /// The platform the tree is built for: linux-x86_64, windows-x86_64,
        /// macos-aarch64, … or a generic linux, windows, macos (default: all).
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        sign: publish::SignArgs,
    },
    /// Offer a published version to another share of installs (0 halts it,
    /// 100 is everyone); installs already in stay in when it is raised.
    Rollout {
        /// The repository folder.
        #[arg(long)]
        repo: PathBuf,
        /// The program's name.
        #[arg(long)]
        program: String,
        /// The version.
        #[arg(long)]
        version: String,
        /// The share of installs, 0 to 100.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100), required_unless_present = "schedule")]
        percent: Option<u8>,
        /// Or a schedule, as for `publish --rollout-schedule`.
        #[arg(long, conflicts_with = "percent")]
        schedule: Option<String>,
        #[command(flatten)]
        sign: publish::SignArgs,
    },
    /// Withdraw a published version (apps running it go back to the newest one not withdrawn).
    Yank {
        /// The repository folder.
        #[arg(long)]
        repo: PathBuf,
        /// The program's name.
        #[arg(long)]
        program: String,
        /// The version to withdraw.
        #[arg(long)]
        version: String,
        #[command(flatten)]
        sign: publish::SignArgs,
    },
    /// Re-sign the freshness file (versions.txt.fresh) with a higher
    /// serial and a new expiry; versions.txt and the releases stay byte for
    /// byte, so cached copies stay valid. Run it more often than
    /// --expires-in (e.g. daily, from a scheduled job) so a signed
    /// repository never expires between releases.
    Refresh {
        /// The repository folder.
        #[arg(long)]
        repo: PathBuf,
        #[command(flatten)]
        sign: publish::SignArgs,
    },
    /// Upload a repository folder in the safe order: artifacts first, then
    /// versions.txt and its signature, the freshness file last, so that an
    /// upload cut off part way leaves the previous release served intact.
    /// A published artifact is never rewritten. S3 takes its credentials
    /// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN),
    /// AWS_REGION, and AWS_ENDPOINT_URL for R2, B2, MinIO and the like.
    Upload {
        /// The repository folder (from leapfrog publish).
        repo: PathBuf,
        /// file:///path (or a path), ftp://user:password@host/path,
        /// ftps://..., or s3://bucket/prefix.
        dest: String,
        /// Verify the repository with this public key first.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Make a minisign key pair for signing versions.txt.
    Keygen {
        /// Where to write the secret key (mode 0600; never overwritten).
        #[arg(long)]
        secret_key: PathBuf,
        /// Where to write the public key (build it into the app).
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Put the previous version back (the program must not be running).
    Rollback {
        /// The install dir.
        #[arg(long)]
        install: PathBuf,
        /// The backup dir (default: the install dir's sibling <install>.backup).
        #[arg(long)]
        backup: Option<PathBuf>,
    },
    /// Check a repository before upload: signature, serial, expiry, every archive and file list.
    Verify {
        /// The repository folder.
        dir: PathBuf,
        /// The publisher's public key.
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Serve a folder over HTTP (GET, HEAD, byte ranges).
    Serve {
        /// The folder.
        dir: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8000")]
        addr: String,
    },
    /// Check a manifest for a newer version (exit 0: up to date, 10: update available, 1: error).
    Check {
        /// versions.txt (or a JSON endpoint): http(s):// URL, file:// URL or path.
        manifest_url: String,
        /// The program's name.
        #[arg(long)]
        program: String,
        /// The version installed now.
        #[arg(long)]
        current: String,
        /// Require versions.txt.minisig, signed by this minisign public key.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The release channel followed (default: stable).
        #[arg(long)]
        channel: Option<String>,
        /// Decide staged rollouts as for the install with this id (hex, its
        /// `install_id`); without one, a release in a rollout is offered.
        #[arg(long)]
        install_id: Option<String>,
        /// Decide for this platform (e.g. windows-x86_64; default: this one's).
        #[arg(long)]
        target: Option<String>,
        /// Decide as for a check the user asked for: a staged rollout
        /// offers the release to every install unless it is halted.
        #[arg(long)]
        by_user: bool,
        /// Print the decision as JSON: status (up_to_date, available,
        /// required), version, channel, bucket, reason.
        #[arg(long)]
        json: bool,
        /// Keep the last verified manifest (and freshness file) in this
        /// folder and ask the host only whether it changed (If-None-Match,
        /// If-Modified-Since); the serials seen are kept too, so an older
        /// manifest is refused as it is by an install.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
    },
    /// Sum up the adoption pings (apps with adoption_ping on) in a web
    /// server's or CDN's access log: pings, new installs, and how long
    /// since each install's previous ping, by version.
    Adoption {
        /// The access log (nginx, Apache, most CDNs: a request per line).
        log: PathBuf,
    },
    /// Say what an install is (version, channel, install id, keys, last
    /// update) and what it would be offered now, and why.
    Status {
        /// The install dir (default: the current folder).
        #[arg(long, default_value = ".")]
        install: PathBuf,
        /// The backup dir (default: the install dir's sibling <install>.backup).
        #[arg(long)]
        backup: Option<PathBuf>,
    },
    /// Make or apply a file delta (a patch that rebuilds NEW from OLD).
    Delta {
        #[command(subcommand)]
        action: DeltaAction,
    },
    /// Run the whole update story on loopback: publish, install, update, relaunch.
    Demo {
        /// Keep everything in DIR (releases/, install/demo, install/demo.backup).
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DeltaAction {
    /// Write to PATCH the delta that rebuilds NEW from OLD.
    Make {
        /// The old file.
        old: PathBuf,
        /// The new file.
        new: PathBuf,
        /// The patch to write.
        patch: PathBuf,
    },
    /// Rebuild from OLD and PATCH the new file into OUT (checked against
    /// the sha256 the patch names before OUT appears).
    Apply {
        /// The old file (the one the patch was made from).
        old: PathBuf,
        /// The patch.
        patch: PathBuf,
        /// Where the rebuilt file goes.
        out: PathBuf,
        /// Refuse a patch that claims a larger result (bytes).
        #[arg(long, default_value_t = 4 << 30)]
        max_size: u64,
    },
}

fn main() -> ExitCode {
    if app::is_demo_app() {
        return app::main();
    }
    let cli = Cli::parse();
    logger::init_stderr(cli.verbose);
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("leapfrog: {err:#}");
            Exit::Error.into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Publish {
            app_dir,
            program,
            version,
            repo,
            notes,
            channel,
            rollout,
            rollout_schedule,
            min_version,
            critical,
            target,
            sign,
        } => publish::run(
            leapfrog::publish::PublishOptions {
                notes,
                channel,
                rollout,
                rollout_schedule,
                min_version,
                critical,
                target,
                ..leapfrog::publish::PublishOptions::new(app_dir, program, version, repo)
            },
            &sign,
        ),
        Command::Rollout {
            repo,
            program,
            version,
            percent,
            schedule,
            sign,
        } => publish::rollout(&repo, &program, &version, (percent, schedule), &sign),
        Command::Yank {
            repo,
            program,
            version,
            sign,
        } => publish::yank(&repo, &program, &version, &sign),
        Command::Refresh { repo, sign } => publish::refresh(&repo, &sign),
        Command::Upload {
            repo,
            dest,
            public_key,
        } => publish::upload(&repo, &dest, public_key.as_deref()),
        Command::Keygen {
            secret_key,
            public_key,
        } => publish::keygen(&secret_key, &public_key),
        Command::Verify { dir, public_key } => publish::verify(&dir, &public_key),
        Command::Rollback { install, backup } => {
            let (from, to) = leapfrog::rollback(&install, backup.as_deref())?;
            println!("rolled {} back from {from} to {to}; {from} is not offered again until a newer release", install.display());
            Ok(Exit::Ok)
        }
        Command::Serve { dir, addr } => serve::run(&dir, &addr),
        Command::Check {
            manifest_url,
            program,
            current,
            public_key,
            channel,
            install_id,
            target,
            by_user,
            json,
            cache,
        } => check::run(
            &manifest_url,
            &program,
            &current,
            public_key.as_deref(),
            cache.as_deref(),
            leapfrog::internal::Audience {
                channel,
                install_id,
                target: Some(target.unwrap_or_else(leapfrog::internal::this_target)),
                downgrade: false,
                by_user,
                now: None,
            },
            json,
        ),
        Command::Status { install, backup } => status::run(&install, backup.as_deref()),
        Command::Adoption { log } => {
            let text = std::fs::read_to_string(&log)
                .map_err(|e| anyhow::anyhow!("reading the access log {}: {e}", log.display()))?;
            let summary = leapfrog::adoption::summarize(&text);
            if summary.is_empty() {
                println!("no adoption pings in {}", log.display());
            }
            for ((program, version, channel), a) in summary {
                println!(
                    "{program} {version} ({channel}): {} pings: {} new installs, {} a day after the last, {} within a week, {} after longer",
                    a.pings, a.new, a.daily, a.weekly, a.returning
                );
            }
            Ok(Exit::Ok)
        }
        Command::Delta { action } => delta::run(action),
        Command::Demo { keep } => demo::run(keep),
    }
}
