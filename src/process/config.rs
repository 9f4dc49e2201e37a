//! Command line and environment: every flag can also be set from a PERSONALIZE_WATCH_* variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use personalize_watch_runtime::telemetry::LogFormat;

use crate::access::policy;
use crate::access::sources::Sources;
use crate::controller::Scope;
use crate::personalize::{ClientOptions, ListingBounds};
use crate::process::flag_values::{
    AccountList, ArnPatterns, ObjectName, parse_accounts, parse_arns, parse_bytes, parse_duration,
    parse_object_name, parse_poll_interval,
};
use crate::process::leader::LeaseSettings;
use crate::reconcile::Settings;
use crate::reconcile::spec::PollIntervals;

#[derive(Parser, Debug)]
#[command(
    name = "personalize-watch",
    version,
    about = "Kubernetes operator that watches the batch inference jobs of AWS Personalize solution versions",
    long_about = concat!(
        "Kubernetes operator that watches the batch inference jobs of AWS Personalize solution versions.",
        "\n\nAWS credentials and region come from the standard chain (environment, profile, IRSA, ",
        "EKS Pod Identity); AWS_ENDPOINT_URL_PERSONALIZE or AWS_ENDPOINT_URL point it at another endpoint."
    )
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print the SolutionVersionWatch CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RetryMode {
    /// Exponential backoff with jitter.
    Standard,
    /// Standard, plus a client-side rate that drops when Personalize throttles.
    Adaptive,
}

/// `personalize-watch run`: its flags in groups, each turning itself into the settings of the
/// part of the process it configures.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub polling: PollingArgs,
    #[command(flatten)]
    pub lease: LeaseArgs,
}

/// The admin port and logging.
#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    /// Address of the admin HTTP server: /metrics, /healthz, /readyz.
    #[arg(
        long,
        env = "PERSONALIZE_WATCH_ADMIN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "PERSONALIZE_WATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level or filter (RUST_LOG, when set, wins).
    #[arg(long, env = "PERSONALIZE_WATCH_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Which watches this instance handles.
#[derive(Args, Debug, Clone)]
pub struct ScopeArgs {
    /// Watch only these namespaces (repeat the flag or separate with commas); all when empty.
    #[arg(long, env = "PERSONALIZE_WATCH_NAMESPACE", value_delimiter = ',')]
    pub watch_namespace: Vec<String>,

    /// Watch only SolutionVersionWatches matching this label selector (e.g. shard=a).
    #[arg(long, env = "PERSONALIZE_WATCH_LABEL_SELECTOR")]
    pub label_selector: Option<String>,
}

impl ScopeArgs {
    pub fn scope(&self) -> Scope {
        Scope {
            namespaces: self.watch_namespace.clone(),
            label_selector: self.label_selector.clone(),
        }
    }
}

/// Who may watch what, by default, and the roles to assume per account.
#[derive(Args, Debug, Clone)]
pub struct AccessArgs {
    /// Accounts whose solution versions watches may name, in namespaces without the
    /// personalize-watch.dev/allowed-accounts annotation: comma-separated 12-digit IDs, or
    /// "self" for the account of the operator's own identity (from STS GetCallerIdentity).
    #[arg(long, env = "PERSONALIZE_WATCH_DEFAULT_ALLOWED_ACCOUNTS", default_value = "self", value_parser = parse_accounts)]
    pub default_allowed_accounts: AccountList,

    /// ARN patterns watches may name, in namespaces without the
    /// personalize-watch.dev/allowed-arns annotation: comma-separated, "*" as a wildcard.
    #[arg(long, env = "PERSONALIZE_WATCH_DEFAULT_ALLOWED_ARNS", default_value = "*", value_parser = parse_arns)]
    pub default_allowed_arns: ArnPatterns,

    /// NAMESPACE/NAME of a ConfigMap mapping account IDs to the IAM role to assume for them
    /// (a key ACCOUNT.externalId adds an external ID); watched, not read once.
    #[arg(long, env = "PERSONALIZE_WATCH_ACCOUNT_ROLES", value_parser = parse_object_name)]
    pub account_roles: Option<ObjectName>,
}

impl AccessArgs {
    /// The access policy for namespaces without annotations.
    pub fn policy_defaults(&self) -> policy::Defaults {
        policy::Defaults {
            accounts: self.default_allowed_accounts.0.clone(),
            arns: self.default_allowed_arns.0.clone(),
        }
    }

    /// The watches that keep the policy's inputs current, for `namespaces` (all when empty).
    pub fn sources(&self, namespaces: &[String]) -> Sources {
        Sources {
            namespaces: namespaces.to_vec(),
            account_roles: self
                .account_roles
                .as_ref()
                .map(|o| (o.namespace.clone(), o.name.clone())),
        }
    }
}

/// How Personalize is called.
#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    /// Personalize calls per second, per region, for the whole process.
    #[arg(long, env = "PERSONALIZE_WATCH_RATE", default_value_t = 5.0)]
    pub personalize_rate: f64,

    /// Calls that may go out at once above the rate.
    #[arg(long, env = "PERSONALIZE_WATCH_BURST", default_value_t = 5)]
    pub personalize_burst: u32,

    /// Serve the watches of one namespace, account, region and role that are due together from one
    /// account-wide listing when that takes fewer calls than their own listings
    /// (`--shared-listings=false`: every watch makes its own calls).
    #[arg(long, env = "PERSONALIZE_WATCH_SHARED_LISTINGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub shared_listings: bool,

    /// SDK retry mode for throttling and transient errors.
    #[arg(long, env = "PERSONALIZE_WATCH_AWS_RETRY_MODE", value_enum, default_value_t = RetryMode::Standard)]
    pub aws_retry_mode: RetryMode,

    /// SDK attempts per call, the first included.
    #[arg(long, env = "PERSONALIZE_WATCH_AWS_MAX_ATTEMPTS", default_value_t = 3)]
    pub aws_max_attempts: u32,

    /// Time limit for one attempt of one call.
    #[arg(long, env = "PERSONALIZE_WATCH_AWS_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub aws_timeout: Duration,

    /// Personalize endpoint; the standard AWS_ENDPOINT_URL_PERSONALIZE / AWS_ENDPOINT_URL also work.
    #[arg(long, env = "PERSONALIZE_WATCH_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// Jobs one listing may hold; past it the poll fails (ListingTooLarge) and the last good
    /// status stays, marked stale.
    #[arg(long, env = "PERSONALIZE_WATCH_MAX_LISTING_JOBS", default_value_t = ListingBounds::DEFAULT.max_jobs)]
    pub max_listing_jobs: usize,

    /// Bytes one listing may hold (failure reasons are cut to 1 KiB as they are read), as a
    /// number with an optional Ki, Mi or Gi suffix; past it the poll fails like
    /// --max-listing-jobs. The process holds at most --concurrency times this.
    #[arg(long, env = "PERSONALIZE_WATCH_MAX_LISTING_BYTES", default_value = "16Mi", value_parser = parse_bytes)]
    pub max_listing_bytes: usize,
}

impl AwsArgs {
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            endpoint_url: self.aws_endpoint_url.clone(),
            adaptive_retry: self.aws_retry_mode == RetryMode::Adaptive,
            max_attempts: self.aws_max_attempts,
            attempt_timeout: self.aws_timeout,
            rate_per_second: self.personalize_rate,
            burst: self.personalize_burst,
            shared_listings: self.shared_listings,
            listing_bounds: ListingBounds {
                max_jobs: self.max_listing_jobs,
                max_bytes: self.max_listing_bytes,
            },
        }
    }
}

/// When watches are polled, how failures back off, and how many reconciles work at once.
#[derive(Args, Debug, Clone)]
pub struct PollingArgs {
    /// Poll interval for watches that do not set spec.pollInterval (at least 5s).
    #[arg(long, env = "PERSONALIZE_WATCH_DEFAULT_POLL_INTERVAL", default_value = "5m", value_parser = parse_poll_interval)]
    pub default_poll_interval: Duration,

    /// Poll interval while jobs run, for watches that do not set spec.activePollInterval (at least 5s).
    #[arg(long, env = "PERSONALIZE_WATCH_DEFAULT_ACTIVE_POLL_INTERVAL", default_value = "1m", value_parser = parse_poll_interval)]
    pub default_active_poll_interval: Duration,

    /// First retry delay after a failed poll; it doubles up to --max-backoff and resets on success.
    #[arg(long, env = "PERSONALIZE_WATCH_MIN_BACKOFF", default_value = "5s", value_parser = parse_duration)]
    pub min_backoff: Duration,

    /// Longest retry delay after failed polls.
    #[arg(long, env = "PERSONALIZE_WATCH_MAX_BACKOFF", default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,

    /// A listing that changes nothing is written only when status.lastSyncTime is this old, so
    /// quiet watches cost no status writes between heartbeats.
    #[arg(long, env = "PERSONALIZE_WATCH_STATUS_HEARTBEAT", default_value = "10m", value_parser = parse_poll_interval)]
    pub status_heartbeat: Duration,

    /// Reconciles that may work at once; the others wait in their namespace's turn. One
    /// namespace holds at most three quarters of them.
    #[arg(long, env = "PERSONALIZE_WATCH_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// How often every cached watch is checked for a poll that is late (its status behind its
    /// spec, or its last listing older than its interval allows): a safety net for a requeue
    /// lost; late ones are reconciled.
    #[arg(long, env = "PERSONALIZE_WATCH_RESYNC_INTERVAL", default_value = "30m", value_parser = parse_poll_interval)]
    pub resync_interval: Duration,
}

impl PollingArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            default_intervals: PollIntervals {
                idle: self.default_poll_interval,
                while_running: self.default_active_poll_interval,
            },
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
            status_heartbeat: self.status_heartbeat,
            resync: self.resync_interval,
        }
    }
}

/// Leader election, and this instance's name.
#[derive(Args, Debug, Clone)]
pub struct LeaseArgs {
    /// Elect a leader on a coordination.k8s.io Lease so only one replica polls and writes.
    #[arg(
        long,
        env = "PERSONALIZE_WATCH_LEADER_ELECTION",
        default_value_t = false
    )]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(
        long,
        env = "PERSONALIZE_WATCH_LEASE_NAME",
        default_value = "personalize-watch"
    )]
    pub lease_name: String,

    /// Namespace of the Lease (defaults to POD_NAMESPACE, then "default").
    #[arg(long, env = "PERSONALIZE_WATCH_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long a Lease is held without renewal; a standby takes over after it.
    #[arg(long, env = "PERSONALIZE_WATCH_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// This instance's identity in Events and the Lease (defaults to POD_NAME, then the hostname).
    #[arg(long, env = "PERSONALIZE_WATCH_INSTANCE")]
    pub instance: Option<String>,
}

impl LeaseArgs {
    pub fn instance_name(&self) -> String {
        self.instance
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("personalize-watch-{}", std::process::id()))
    }

    /// The Lease to hold, when leader election is on.
    pub fn lease(&self) -> Option<LeaseSettings> {
        self.leader_election.then(|| LeaseSettings {
            name: self.lease_name.clone(),
            namespace: self
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into()),
            duration: self.lease_duration,
            identity: self.instance_name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_help_and_an_environment_variable() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let run = cli.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            if ["help", "version"].contains(&arg.get_id().as_str()) {
                continue;
            }
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
            assert!(
                arg.get_env().is_some(),
                "--{} has no environment variable",
                arg.get_id()
            );
        }
    }

    #[test]
    fn each_group_turns_its_flags_into_its_settings() {
        let cli = Cli::try_parse_from([
            "personalize-watch",
            "run",
            "--watch-namespace=team-a,team-b",
            "--label-selector=shard=a",
            "--leader-election",
            "--lease-name=lease",
            "--lease-namespace=ops",
            "--instance=pod-1",
            "--aws-retry-mode=adaptive",
            "--personalize-rate=2.5",
            "--default-active-poll-interval=30s",
            "--concurrency=3",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let scope = args.scope.scope();
        assert_eq!(scope.namespaces, ["team-a", "team-b"]);
        assert_eq!(scope.label_selector.as_deref(), Some("shard=a"));
        let lease = args.lease.lease().unwrap();
        assert_eq!(
            (lease.name.as_str(), lease.namespace.as_str()),
            ("lease", "ops")
        );
        assert_eq!(lease.identity, "pod-1");
        let options = args.aws.client_options();
        assert!(options.adaptive_retry);
        assert_eq!(options.rate_per_second, 2.5);
        let settings = args.polling.settings();
        assert_eq!(
            settings.default_intervals.while_running,
            Duration::from_secs(30)
        );
        assert_eq!(args.polling.concurrency, 3);
        assert_eq!(
            args.access.sources(&scope.namespaces).namespaces,
            scope.namespaces
        );
    }
}
