//! personalize-emulator: a local, wire-compatible AWS Personalize service. See docs/emulator.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use personalize_emulator::store::ListingOrder;
use personalize_emulator::{EmulatorState, model::StateFile, server};
use personalize_watch_runtime::Shutdown;
use personalize_watch_runtime::telemetry::{self, LogFormat};
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A local, wire-compatible AWS Personalize service (awsJson1_1) with an admin API under /_emulator/"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed on stdout).
    #[arg(
        long,
        env = "PERSONALIZE_EMULATOR_LISTEN",
        default_value = "127.0.0.1:9574"
    )]
    listen: SocketAddr,
    /// JSON or YAML file with {"batchInferenceJobs": [...], "solutionVersions": [...]} loaded at start.
    #[arg(long, env = "PERSONALIZE_EMULATOR_STATE")]
    state: Option<PathBuf>,
    /// How ListBatchInferenceJobs orders jobs: insertion (stable position tokens), newest-first
    /// or last-updated (offset tokens: listings can skip or repeat jobs that change meanwhile).
    #[arg(long, env = "PERSONALIZE_EMULATOR_LISTING_ORDER", value_enum, default_value_t = ListingOrder::Insertion)]
    listing_order: ListingOrder,
    /// Log format.
    #[arg(long, env = "PERSONALIZE_EMULATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level (RUST_LOG, when set, wins).
    #[arg(long, env = "PERSONALIZE_EMULATOR_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Requests the admin API's request log keeps (the oldest go first; about 250 bytes each).
    #[arg(long, env = "PERSONALIZE_EMULATOR_REQUEST_LOG_SIZE", default_value_t = personalize_emulator::DEFAULT_REQUEST_LOG_SIZE as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    request_log_size: u64,
}

fn load(path: Option<&Path>) -> Result<EmulatorState, String> {
    let initial = match path {
        None => StateFile::default(),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| StateFile::parse(&text))
            .map_err(|e| format!("cannot load the state file {}: {e}", path.display()))?,
    };
    EmulatorState::new(initial).map_err(|e| format!("invalid state: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format, &args.log_level);
    let mut state = match load(args.state.as_deref()) {
        Ok(state) => state,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    state.order = args.listing_order;
    state.request_log_size = usize::try_from(args.request_log_size).unwrap_or(usize::MAX);
    let jobs = state.store.job_count();
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(listen = %args.listen, "cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().map_or(args.listen, |a| a);
    info!(%addr, jobs, "personalize-emulator listening");
    // Tests and scripts read the address from this line.
    println!("listening on http://{addr}");
    let shutdown = Shutdown::on_signal();
    server::run(listener, server::Shared::new(state), shutdown.wait()).await;
    info!("stopped");
    ExitCode::SUCCESS
}
