//! The SDK clients: one per region and role, sharing the process's base configuration
//! (credentials from the default chain, retries, timeouts), and the operator's own account.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_personalize::Client;
use aws_sdk_personalize::config::Region;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use http_body_util::Limited;
use tokio::sync::{Mutex, OnceCell};

use crate::access::RoleRef;
use crate::text::error_chain;

/// Why the operator's own account is not known.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum OwnAccountError {
    /// The call failed; the SDK's error chain, cut to 1 KiB.
    #[error("STS GetCallerIdentity failed: {0}")]
    Call(String),
    #[error("STS GetCallerIdentity named no account")]
    NoAccount,
}

/// The largest response body read: a page of 100 jobs is far smaller; a larger answer is
/// refused (MalformedResponse) instead of filling memory.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The session name of assumed roles: CloudTrail shows who called.
pub const SESSION_NAME: &str = "personalize-watch";
/// STS needs a region when the environment names none.
const FALLBACK_REGION: &str = "us-east-1";

/// How the SDK retries and where it goes.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub endpoint_url: Option<String>,
    pub adaptive_retry: bool,
    pub max_attempts: u32,
    pub attempt_timeout: Duration,
    pub rate_per_second: f64,
    pub burst: u32,
    /// Whether watches due together may share one account-wide listing.
    pub shared_listings: bool,
    pub listing_bounds: super::ListingBounds,
}

/// Clients by region and role; the own account once known.
pub struct Clients {
    base: aws_config::SdkConfig,
    /// The Personalize endpoint override every client uses, if any.
    endpoint: Option<String>,
    /// Each client and when it was last handed out: one unused for [`CLIENT_IDLE`] goes (a role
    /// changed in the account-roles map, a region no watch names any more).
    by_key: Mutex<HashMap<ClientKey, (Client, Instant)>>,
    own_account: OnceCell<String>,
}

/// A client's region and role.
type ClientKey = (String, Option<RoleRef>);

/// How long a client nobody asked for is kept.
pub const CLIENT_IDLE: Duration = Duration::from_secs(60 * 60);

/// Drops the entries last used more than `idle` before `now`.
fn evict_idle<K, V>(entries: &mut HashMap<K, (V, Instant)>, now: Instant, idle: Duration) {
    entries.retain(|_, (_, used)| now.saturating_duration_since(*used) <= idle);
}

impl Clients {
    /// From a prepared loader: the default chain, or static credentials in tests.
    pub async fn load(loader: aws_config::ConfigLoader, options: &ClientOptions) -> Self {
        let retry = if options.adaptive_retry {
            RetryConfig::adaptive()
        } else {
            RetryConfig::standard()
        }
        .with_max_attempts(options.max_attempts.max(1));
        // The attempt timeout bounds a stalled page as a whole; the SDK's stalled-stream
        // protection, made for long transfers, timed every read of every page besides.
        let loader = loader
            .retry_config(retry)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(options.attempt_timeout)
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        Clients {
            base: loader.load().await,
            endpoint: options.endpoint_url.clone().or_else(endpoint_from_env),
            by_key: Mutex::default(),
            own_account: OnceCell::new(),
        }
    }

    pub async fn from_env(options: &ClientOptions) -> Self {
        Self::load(aws_config::defaults(BehaviorVersion::latest()), options).await
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The client for `region`, with the operator's credentials or those of `role` (assumed
    /// through STS in that region, cached and refreshed before they expire).
    pub async fn get(&self, region: &str, role: Option<&RoleRef>) -> Client {
        let key = (region.to_string(), role.cloned());
        let now = Instant::now();
        {
            let mut clients = self.by_key.lock().await;
            evict_idle(&mut clients, now, CLIENT_IDLE);
            if let Some((client, used)) = clients.get_mut(&key) {
                *used = now;
                return client.clone();
            }
        }
        let mut config = aws_sdk_personalize::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()));
        config.set_endpoint_url(self.endpoint.clone());
        config = config.interceptor(BoundedResponses);
        if let Some(role) = role {
            let mut assume = AssumeRoleProvider::builder(&role.role_arn)
                .session_name(SESSION_NAME)
                .region(Region::new(region.to_string()))
                .configure(&self.base);
            if let Some(id) = &role.external_id {
                assume = assume.external_id(id);
            }
            config = config.credentials_provider(assume.build().await);
        }
        let client = Client::from_conf(config.build());
        self.by_key.lock().await.insert(key, (client.clone(), now));
        client
    }

    /// The account of the operator's own identity, if already known.
    pub fn known_own_account(&self) -> Option<String> {
        self.own_account.get().cloned()
    }

    /// The account of the operator's own identity (STS GetCallerIdentity, which needs no
    /// permission); asked again after a failure.
    pub async fn own_account(&self) -> Result<String, OwnAccountError> {
        self.own_account
            .get_or_try_init(|| self.caller_account())
            .await
            .cloned()
    }

    async fn caller_account(&self) -> Result<String, OwnAccountError> {
        let mut config = aws_sdk_sts::config::Builder::from(&self.base);
        if self.base.region().is_none() {
            config = config.region(Region::new(FALLBACK_REGION));
        }
        let sts = aws_sdk_sts::Client::from_conf(config.build());
        let identity = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| OwnAccountError::Call(error_chain(&e, 1024)))?;
        identity
            .account()
            .map(str::to_string)
            .ok_or(OwnAccountError::NoAccount)
    }
}

/// The standard endpoint overrides, as the SDK reads them: `AWS_ENDPOINT_URL_PERSONALIZE`, then
/// `AWS_ENDPOINT_URL`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true.
fn endpoint_from_env() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    var("AWS_ENDPOINT_URL_PERSONALIZE").or_else(|| var("AWS_ENDPOINT_URL"))
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of a response body, whatever its headers say.
#[derive(Debug)]
struct BoundedResponses;

impl Intercept for BoundedResponses {
    fn name(&self) -> &'static str {
        "BoundedResponses"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.response_mut().take_body();
        *context.response_mut().body_mut() =
            SdkBody::from_body_1_x(Limited::new(body, MAX_RESPONSE_BYTES));
        Ok(())
    }
}

/// The ARN generator of the api crate's property tests (by path; see its `arn::near_arn`).
#[cfg(test)]
#[path = "../../crates/api/src/near_arn.rs"]
mod near_arn;

#[cfg(test)]
mod tests {
    use aws_sdk_personalize::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    use proptest::prelude::*;

    #[test]
    fn clients_nobody_asked_for_within_the_idle_time_go() {
        let start = std::time::Instant::now();
        let idle = std::time::Duration::from_secs(3600);
        let mut entries = std::collections::HashMap::from([
            ("used-lately", (1, start + idle)),
            ("role-replaced", (2, start)),
        ]);
        super::evict_idle(
            &mut entries,
            start + idle + std::time::Duration::from_secs(1),
            idle,
        );
        assert_eq!(entries.keys().copied().collect::<Vec<_>>(), ["used-lately"]);
    }

    use super::near_arn::near_arn;
    use crate::crd::{SolutionVersionWatch, SolutionVersionWatchSpec};
    use crate::reconcile::spec::arn_of;

    /// Where the SDK sends a request for `region`, with an override or without.
    fn resolved(region: &str, endpoint: Option<&str>) -> Result<String, String> {
        let params = Params::builder()
            .region(region)
            .set_endpoint(endpoint.map(str::to_string))
            .use_fips(false)
            .use_dual_stack(false)
            .build()
            .map_err(|e| e.to_string())?;
        let resolved =
            futures::executor::block_on(DefaultResolver::new().resolve_endpoint(&params))
                .map_err(|e| e.to_string())?;
        Ok(resolved.url().to_string())
    }

    fn watch(arn: &str, region: Option<String>) -> SolutionVersionWatch {
        SolutionVersionWatch::new(
            "w",
            SolutionVersionWatchSpec {
                region,
                ..SolutionVersionWatchSpec::watching(arn.to_string())
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever a spec holds, an accepted one is listed at its partition's Personalize
        /// endpoint for its region, or at the configured override: never a host it names.
        #[test]
        fn no_spec_chooses_the_host(
            arn in near_arn(),
            region in proptest::option::of(prop_oneof![
                Just("us-east-1".to_string()),
                "[a-z./:@-]{1,20}",
            ]),
        ) {
            let Ok(parsed) = arn_of(&watch(&arn, region)) else {
                return Ok(());
            };
            let url = resolved(&parsed.region, None).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&url, &parsed.endpoint());
            let host = url.trim_start_matches("https://");
            prop_assert!(
                crate::access::arn::PARTITIONS.iter().any(|p| host == format!("personalize.{}.{}", parsed.region, p.dns_suffix)),
                "{}", url
            );
            let overridden = resolved(&parsed.region, Some("http://127.0.0.1:4566")).map_err(TestCaseError::fail)?;
            prop_assert_eq!(overridden, "http://127.0.0.1:4566");
        }
    }

    #[test]
    fn known_regions_resolve_to_their_partitions_endpoints() {
        for (region, host) in [
            ("us-east-1", "personalize.us-east-1.amazonaws.com"),
            (
                "cn-northwest-1",
                "personalize.cn-northwest-1.amazonaws.com.cn",
            ),
            ("us-gov-west-1", "personalize.us-gov-west-1.amazonaws.com"),
            ("us-isob-east-1", "personalize.us-isob-east-1.sc2s.sgov.gov"),
        ] {
            assert_eq!(resolved(region, None).unwrap(), format!("https://{host}"));
        }
    }
}
