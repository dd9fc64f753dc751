//! `dvhost emulator`: serve the emulator, or drive a running one.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dvhost_emulator::{EmulatorBuilder, RunningEmulator, Seed};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EmulatorArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the "listening on"
    /// line names it), e.g. --listen 127.0.0.1:0.
    #[arg(long, default_value = "127.0.0.1:7400", env = "DVHOST_EMULATOR_LISTEN")]
    listen: SocketAddr,
    /// Serve HTTPS with a generated local CA (real clients require HTTPS authorities).
    #[arg(long)]
    tls: bool,
    /// Where to write the CA certificate (PEM) when --tls is on.
    #[arg(long, default_value = "dvhost-emulator-ca.pem")]
    ca_out: PathBuf,
    /// Extra DNS name or IP for the server certificate (repeatable).
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// TOML seed: tenants, users, apps, environments, settings.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Persist the directory to this JSON file and reload it at start.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Secret the control API (/_emulator/) then wants from every caller
    /// (Authorization: Bearer <token>); without it the control API answers
    /// loopback callers only.
    #[arg(long, env = "DVHOST_EMULATOR_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Approve a pending device code as a user.
    Approve {
        /// The user code shown by the client (e.g. ABCD2EFGH).
        code: String,
        /// UPN or object id of the user who signs in.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        target: Target,
    },
    /// Decline a pending device code.
    Decline {
        code: String,
        #[command(flatten)]
        target: Target,
    },
    /// List device codes waiting for approval.
    Pending {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
struct Target {
    /// Base URL of the running emulator.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7400",
        env = "DVHOST_EMULATOR_URL"
    )]
    url: String,
    /// CA certificate to trust when the emulator serves HTTPS.
    #[arg(long, env = "DVHOST_EMULATOR_CA")]
    ca: Option<PathBuf>,
    /// The emulator's control token, when it was started with one.
    #[arg(long, env = "DVHOST_EMULATOR_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    match args.action {
        None => serve(args.serve).await,
        Some(Action::Approve { code, user, target }) => {
            let body = serde_json::json!({ "user": user });
            control(
                &target,
                reqwest::Method::POST,
                &format!("device-codes/{code}/approve"),
                Some(body),
            )
            .await?;
            println!("approved {code} as {user}");
            Ok(())
        }
        Some(Action::Decline { code, target }) => {
            control(
                &target,
                reqwest::Method::POST,
                &format!("device-codes/{code}/decline"),
                None,
            )
            .await?;
            println!("declined {code}");
            Ok(())
        }
        Some(Action::Pending { target }) => {
            let text = control(&target, reqwest::Method::GET, "device-codes", None).await?;
            println!("{text}");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let seed = match &args.seed {
        Some(p) => Seed::from_file(p)?,
        None => Seed::default(),
    };
    let mut builder = EmulatorBuilder::new()
        .listen(args.listen)
        .tls(args.tls)
        .tls_names(args.tls_names)
        .control_token(args.control_token)
        .seed(seed);
    if let Some(state) = args.state {
        builder = builder.state_file(state);
    }
    let emu = builder.start().await?;
    // The CA file exists before the "listening" line, so a script can wait
    // for the line and then use both.
    if let Some(pem) = emu.ca_certificate_pem() {
        std::fs::write(&args.ca_out, pem)
            .with_context(|| format!("writing {}", args.ca_out.display()))?;
    }
    let stop = stop_signal()?;
    // A reader that stops reading after the line it waits for must not stop
    // the emulator: a closed stdout is logged, not a panic.
    if let Err(e) = print_banner(&emu, &args.ca_out) {
        tracing::warn!(error = %e, "could not print the start-up lines");
    }
    // Ctrl-C (and SIGTERM) shut down cleanly, so the Dataverse rows reach
    // the state file.
    emu.serve_until(stop).await
}

/// Registers the Ctrl-C and SIGTERM handlers now, before the start-up lines
/// are printed (a signal sent as soon as "listening" appears must reach the
/// clean shutdown, not the default action), and returns the future that ends
/// on either.
pub(super) fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static>
{
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("waiting for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("waiting for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("cannot wait for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    })
}

fn client(target: &Target) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder();
    if let Some(ca) = &target.ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        b = b.tls_certs_merge([reqwest::Certificate::from_pem(&pem)?]);
    }
    Ok(b.build()?)
}

/// Adds the control token, when one is configured.
fn authorized(req: reqwest::RequestBuilder, target: &Target) -> reqwest::RequestBuilder {
    match &target.control_token {
        Some(token) => req.bearer_auth(token),
        None => req,
    }
}

/// Calls the control API; the response text, or an error naming the status.
async fn control(
    target: &Target,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let client = client(target)?;
    let url = format!("{}/_emulator/{path}", target.url.trim_end_matches('/'));
    let mut req = authorized(client.request(method.clone(), &url), target);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{status}: {text}");
    }
    Ok(text)
}

/// The start-up lines: the CA file, each environment, then "listening".
fn print_banner(emu: &RunningEmulator, ca_out: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if emu.ca_certificate_pem().is_some() {
        writeln!(
            out,
            "CA certificate written to {} (trust it, e.g. REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS)",
            ca_out.display()
        )?;
    }
    for (name, url) in emu.environments() {
        writeln!(out, "environment {name}: {url}")?;
    }
    writeln!(out, "dvhost emulator listening on {}", emu.base_url())?;
    writeln!(
        out,
        "authorities: {}/<tenant>   control API: {}/_emulator/",
        emu.base_url(),
        emu.base_url()
    )?;
    out.flush()
}
