//! `dvhost emulator`: serve the emulator, or drive a running one.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dvhost_emulator::{EmulatorBuilder, Seed};

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
        println!(
            "CA certificate written to {} (trust it, e.g. REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS)",
            args.ca_out.display()
        );
    }
    for (name, url) in emu.environments() {
        println!("environment {name}: {url}");
    }
    println!("dvhost emulator listening on {}", emu.base_url());
    println!(
        "authorities: {}/<tenant>   control API: {}/_emulator/",
        emu.base_url(),
        emu.base_url()
    );
    // Ctrl-C (and SIGTERM) shut down cleanly, so the Dataverse rows reach
    // the state file.
    emu.serve_until(stop_signal()).await
}

/// Completes on Ctrl-C, or on SIGTERM where there is one.
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("cannot wait for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                eprintln!("cannot wait for SIGTERM: {e}");
                ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
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
