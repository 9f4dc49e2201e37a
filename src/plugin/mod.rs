//! `kubectl personalize-watch jobs NAME`: the watch's jobs as a table, for people. The same
//! binary serves as the kubectl plugin when installed (or linked) as `kubectl-personalize_watch`
//! on PATH. It reads the watch's status only; [`table`] renders it without I/O.

pub mod table;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::crd::SolutionVersionWatch;

/// How `jobs` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Adds the job's ARN and when it was last updated.
    Wide,
    /// The status (without the ledger) as JSON.
    Json,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// The SolutionVersionWatch.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's namespace, else "default").
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Output format: the table (default), wide, or json.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// Why `jobs` could not print a watch.
#[derive(thiserror::Error, Debug)]
pub enum PluginError {
    #[error("cannot read {}: {source}", path.display())]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig: {0}")]
    NoKubeconfig(#[source] kube::config::InferConfigError),
    #[error("cannot load the kubeconfig: {0}")]
    LoadKubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot build a client: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot read solutionversionwatch {name:?}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "solutionversionwatches.personalize-watch.dev {name:?} not found in namespace {namespace:?}"
    )]
    NotFound { name: String, namespace: String },
    #[error("cannot write the watch as JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Runs `jobs`: reads the watch and prints it. Errors go to stderr as kubectl prints them.
pub async fn run(args: JobsArgs) -> ExitCode {
    crate::install_crypto_provider();
    match print_jobs(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn print_jobs(args: &JobsArgs) -> Result<(), PluginError> {
    let config = client_config(args).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(PluginError::Client)?;
    let api: Api<SolutionVersionWatch> = Api::namespaced(client, &namespace);
    let watch = api
        .get_opt(&args.name)
        .await
        .map_err(|source| PluginError::Read {
            name: args.name.clone(),
            source,
        })?
        .ok_or_else(|| PluginError::NotFound {
            name: args.name.clone(),
            namespace: namespace.clone(),
        })?;
    let text = match args.output {
        Some(Output::Json) => table::json(&watch).map_err(PluginError::Json)?,
        wide => {
            let width = terminal_width();
            table::render(
                &watch,
                jiff::Timestamp::now(),
                width,
                wide == Some(Output::Wide),
            )
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// The same resolution as kubectl: --kubeconfig, else KUBECONFIG, else ~/.kube/config, else
/// the in-cluster config; --context picks a context.
async fn client_config(args: &JobsArgs) -> Result<Config, PluginError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let file =
                Kubeconfig::read_from(path).map_err(|source| PluginError::ReadKubeconfig {
                    path: path.clone(),
                    source,
                })?;
            Config::from_custom_kubeconfig(file, &options).await
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await,
        (None, None) => {
            return Config::infer().await.map_err(PluginError::NoKubeconfig);
        }
    };
    config.map_err(PluginError::LoadKubeconfig)
}

/// Columns to fit: COLUMNS, else the terminal's width; None (no cut) when piped.
fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(n);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size().map(|(w, _)| usize::from(w.0))
}
