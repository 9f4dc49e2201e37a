//! The test fixture: a [`Context`] whose Kubernetes client is a tower-test mock (the test
//! answers each request through the [`Handle`]) and whose Personalize client goes to a test's
//! endpoint, normally an in-process emulator. Every unit test that needs a Context builds it
//! here.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_personalize::config::{BehaviorVersion, Credentials, Region};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;

use crate::access::Access;
use crate::access::policy::{Account, Defaults};
use crate::events::Publisher;
use crate::metrics::Metrics;
use crate::personalize::{ClientOptions, ListingBounds, Personalize};

use super::spec::PollIntervals;
use super::{Context, Parts, Settings};

/// The test's side of the mocked API server.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

impl Context {
    /// A Context on a mocked API server, with Personalize at `endpoint`; the namespace
    /// `default` may watch the emulator's account, any ARN.
    pub async fn test(endpoint: &str) -> (Arc<Context>, Handle) {
        // The emulator's account for unknown keys; no STS call needed.
        let defaults = Defaults {
            accounts: vec![Account::Id("123456789012".into())],
            arns: vec!["*".into()],
        };
        Context::test_with(endpoint, defaults).await
    }

    /// [`Context::test`] with the policy `defaults`.
    pub async fn test_with(endpoint: &str, defaults: Defaults) -> (Arc<Context>, Handle) {
        crate::install_crypto_provider();
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let metrics = Arc::new(Metrics::new());
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "not-a-secret",
                None,
                None,
                "test",
            ))
            .region(Region::new("us-east-1"))
            // Every service, STS included, goes to the test's endpoint: nothing leaves the machine.
            .endpoint_url(endpoint);
        let options = ClientOptions {
            endpoint_url: Some(endpoint.to_string()),
            adaptive_retry: false,
            max_attempts: 1,
            attempt_timeout: Duration::from_secs(5),
            rate_per_second: 100.0,
            burst: 10,
            shared_listings: true,
            listing_bounds: ListingBounds::DEFAULT,
        };
        let personalize =
            Arc::new(Personalize::from_loader(loader, &options, metrics.clone()).await);
        let events = Publisher::new(client.clone(), "test-instance");
        let access = Arc::new(Access::new(defaults));
        access.set_namespace("default", Default::default());
        let ctx = Context::new(Parts {
            client,
            personalize,
            events,
            metrics,
            settings: Settings::test(),
            access,
            concurrency: 4,
        });
        (Arc::new(ctx), handle)
    }
}

impl Settings {
    /// Polls every 5m, every 1m while jobs run; backoff 5s to 5m; heartbeat 10m; resync 30m.
    pub fn test() -> Self {
        Settings {
            default_intervals: PollIntervals {
                idle: Duration::from_secs(300),
                while_running: Duration::from_secs(60),
            },
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            status_heartbeat: Duration::from_secs(600),
            resync: Duration::from_secs(1800),
        }
    }
}
