//! The command line, as kubectl users know it: `kubectl personalize-watch COMMAND`, with
//! kubectl's flags for the namespace, the kubeconfig and the output.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// SolutionVersionWatches (personalize-watch.dev) and their AWS Personalize batch inference
/// jobs, read from the cluster: what the operator wrote into status.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl personalize-watch",
    bin_name = "kubectl personalize-watch",
    version,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A watch's jobs as a table, with its counts, latest job and conditions.
    Jobs {
        /// The SolutionVersionWatch.
        name: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        print: Print,
    },
    /// Every watch of the namespace (-A: of every namespace): counts, latest job, Ready, age.
    List {
        /// Watches of every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Only watches whose labels match this selector (as kubectl's -l).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        print: Print,
    },
    /// Completion candidates for kubectl (the kubectl_complete-personalize_watch script).
    #[command(name = "__complete", hide = true)]
    Complete {
        /// The words after `kubectl personalize-watch`, the one being completed last.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

/// Which cluster and namespace, resolved as kubectl resolves them.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The namespace (default: the kubeconfig context's namespace, else "default").
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// How to print.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Print {
    /// Output format: the table (default), wide (more columns), or json or yaml (the
    /// Kubernetes object; for list, a List of them).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// Tables without their header lines.
    #[arg(long)]
    pub no_headers: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Wide,
    Json,
    Yaml,
}
