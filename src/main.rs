//! personalize-watch: the operator binary. `run` is the controller (see `run.rs`); `crd` prints
//! the CustomResourceDefinition; `jobs` prints a watch's jobs (also as the kubectl plugin
//! `kubectl-personalize_watch`, see `plugin`).

use std::process::ExitCode;

use clap::Parser;
use personalize_watch::config::{Cli, Command};
use personalize_watch::crd;

/// A reconcile allocates many short-lived strings (a page of job summaries); mimalloc spends
/// about a third of glibc malloc's CPU on them and fragments less (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => block_on(personalize_watch::run::run(*args)),
        Command::Jobs(args) => block_on(personalize_watch::plugin::run(args)),
    }
}

fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
