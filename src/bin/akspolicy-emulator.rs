//! `akspolicy-emulator`: runs the local ARM + Entra ID emulator (see `akspolicy::emulator`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use akspolicy::emulator::{self, Config};

/// Local HTTPS emulator of Azure Resource Manager and the Entra ID token endpoint.
#[derive(Parser)]
#[command(
    name = "akspolicy-emulator",
    version,
    about = "Local HTTPS emulator of Azure Resource Manager and the Entra ID token endpoint"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT. Prints one JSON line with the connection details when ready.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory for the database, certificates, env.sh and emulator.json.
    #[arg(long)]
    state_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Azure/azure-policy checkout (or its built-in-policies folder) to serve built-ins from.
    #[arg(long)]
    builtins: Option<PathBuf>,
    /// GUID of the default subscription.
    #[arg(long)]
    subscription_id: Option<String>,
    /// GUID of the tenant.
    #[arg(long)]
    tenant_id: Option<String>,
    /// Client id of the service principal.
    #[arg(long)]
    client_id: Option<String>,
    /// Client secret of the service principal.
    #[arg(long, env = "AKSPOLICY_EMULATOR_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// JSON fault profile to start with (keys as for `POST /_emulator/faults`).
    #[arg(long)]
    faults: Option<PathBuf>,
}

fn init_logging() {
    let filter = std::env::var("AKSPOLICY_EMULATOR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .target(env_logger::Target::Stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let faults = match &args.faults {
        Some(path) => match emulator::FaultProfile::from_file(path) {
            Ok(p) => p,
            Err(e) => {
                log::error!("fault profile {e}");
                return ExitCode::FAILURE;
            }
        },
        None => emulator::FaultProfile::default(),
    };
    let config = Config {
        faults,
        state_dir: args.state_dir,
        listen: args.listen,
        builtins_dir: args.builtins,
        subscription_id: args.subscription_id,
        tenant_id: args.tenant_id,
        client_id: args.client_id,
        client_secret: args.client_secret,
    };
    let running = match emulator::start(config).await {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string(running.info()) {
        // The ready line is the binary's stdout protocol: harnesses read exactly this line.
        Ok(line) => println!("{line}"),
        Err(e) => {
            log::error!("encoding ready info: {e}");
            running.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    wait_for_signal().await;
    log::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the emulator");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
