//! `kubectl personalize-watch`: the kubectl plugin of personalize-watch. It reads
//! SolutionVersionWatches from the cluster (what the operator wrote into status) and never
//! talks to AWS. kubectl runs it as `kubectl personalize-watch` when `kubectl-personalize_watch`
//! is on PATH (krew installs it so).

mod cli;
mod client;
mod commands;
mod complete;
mod render;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube's TLS is rustls; with no provider chosen the first TLS client panics.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Jobs {
                name,
                target,
                print,
            } => commands::jobs(&name, &target, print).await,
            Command::List {
                all_namespaces,
                selector,
                target,
                print,
            } => commands::list(all_namespaces, selector.as_deref(), &target, print).await,
            Command::Complete { words } => Ok(complete::answer(&words).await),
        }
    });
    match result {
        Ok(text) => {
            commands::print(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
