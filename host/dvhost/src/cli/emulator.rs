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
    /// Address to listen on.
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
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    match args.action {
        None => serve(args.serve).await,
        Some(Action::Approve { code, user, target }) => {
            let body = serde_json::json!({ "user": user });
            control(&target, &format!("device-codes/{code}/approve"), Some(body)).await?;
            println!("approved {code} as {user}");
            Ok(())
        }
        Some(Action::Decline { code, target }) => {
            control(&target, &format!("device-codes/{code}/decline"), None).await?;
            println!("declined {code}");
            Ok(())
        }
        Some(Action::Pending { target }) => {
            let client = client(&target)?;
            let url = format!(
                "{}/_emulator/device-codes",
                target.url.trim_end_matches('/')
            );
            let resp = client
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            println!("{}", resp.text().await?);
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
        .seed(seed);
    if let Some(state) = args.state {
        builder = builder.state_file(state);
    }
    let emu = builder.start().await?;
    println!("dvhost emulator listening on {}", emu.base_url());
    if let Some(pem) = emu.ca_certificate_pem() {
        std::fs::write(&args.ca_out, pem)
            .with_context(|| format!("writing {}", args.ca_out.display()))?;
        println!(
            "CA certificate written to {} (trust it, e.g. REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS)",
            args.ca_out.display()
        );
    }
    println!(
        "authorities: {}/<tenant>   control API: {}/_emulator/",
        emu.base_url(),
        emu.base_url()
    );
    tokio::select! {
        r = emu.wait() => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn client(target: &Target) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder();
    if let Some(ca) = &target.ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        b = b.tls_certs_merge([reqwest::Certificate::from_pem(&pem)?]);
    }
    Ok(b.build()?)
}

async fn control(
    target: &Target,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let client = client(target)?;
    let url = format!("{}/_emulator/{path}", target.url.trim_end_matches('/'));
    let mut req = client.post(&url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        anyhow::bail!("{status}: {text}");
    }
    Ok(())
}
