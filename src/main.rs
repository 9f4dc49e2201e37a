//! personalize-watch: the operator binary. `run` is the controller (see `run.rs`); `crd` prints
//! the CustomResourceDefinition.

use std::process::ExitCode;

use clap::Parser;
use personalize_watch::config::{Cli, Command};
use personalize_watch::crd;

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
        Command::Run(args) => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(personalize_watch::run::run(*args)),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
