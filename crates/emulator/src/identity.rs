//! Who is calling: accounts, roles and the credentials they hold.
//!
//! A request's access key (from its SigV4 `Credential=`) names a principal: a configured
//! identity, temporary credentials issued by AssumeRole, or, for any other key, a user of the
//! default account. Signatures are not verified; the key only says who the caller claims to be.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// The account unknown access keys belong to, unless the state file says otherwise.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// A long-term identity: an access key of an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySpec {
    pub access_key_id: String,
    pub account: String,
}

/// A role that callers may assume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    pub role_arn: String,
    /// Accounts whose principals may assume it.
    #[serde(default)]
    pub trusted_accounts: Vec<String>,
    /// When set, AssumeRole must carry this external ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub account: String,
    pub arn: String,
}

/// A request's caller: who, and the region its signature names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub region: String,
}

/// What a request's SigV4 credential scope says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

/// `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
pub fn scope(authorization: &str) -> Option<Scope> {
    let credential = authorization
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let access_key_id = parts.next()?.to_string();
    let _date = parts.next()?;
    Some(Scope {
        access_key_id,
        region: parts.next()?.to_string(),
        service: parts.next()?.to_string(),
    })
}

/// Temporary credentials remembered at most: past it the oldest are forgotten, and a request
/// signed with a forgotten key is refused as expired (clients assume the role again), so an
/// emulator left running under `make demo` stays flat however often roles are assumed.
pub const MAX_TEMPORARY_CREDENTIALS: usize = 1_000;

/// What every access key AssumeRole issues starts with.
const TEMPORARY_PREFIX: &str = "ASIAEMULATED";

/// Accounts, identities, roles, and the temporary credentials issued (the newest
/// [`MAX_TEMPORARY_CREDENTIALS`]).
#[derive(Clone, Debug)]
pub struct Identities {
    default_account: String,
    keys: HashMap<String, Principal>,
    roles: Vec<RoleSpec>,
    issued: u64,
    temporary: HashMap<String, Principal>,
    /// Temporary keys, oldest first.
    temporary_order: VecDeque<String>,
}

impl Default for Identities {
    fn default() -> Self {
        Identities::new(None, &[], &[])
    }
}

impl Identities {
    pub fn new(
        default_account: Option<&str>,
        identities: &[IdentitySpec],
        roles: &[RoleSpec],
    ) -> Self {
        let default_account = default_account.unwrap_or(DEFAULT_ACCOUNT).to_string();
        let keys = identities
            .iter()
            .map(|i| (i.access_key_id.clone(), user(&i.account, &i.access_key_id)))
            .collect();
        Identities {
            default_account,
            keys,
            roles: roles.to_vec(),
            issued: 0,
            temporary: HashMap::new(),
            temporary_order: VecDeque::new(),
        }
    }

    /// The principal behind an access key.
    pub fn principal(&self, access_key_id: &str) -> Principal {
        self.keys
            .get(access_key_id)
            .or_else(|| self.temporary.get(access_key_id))
            .cloned()
            .unwrap_or_else(|| user(&self.default_account, access_key_id))
    }

    /// Whether `access_key_id` is temporary credentials issued here and since forgotten.
    pub fn expired(&self, access_key_id: &str) -> bool {
        access_key_id.starts_with(TEMPORARY_PREFIX) && !self.temporary.contains_key(access_key_id)
    }

    /// Temporary credentials remembered now.
    pub fn temporary_credentials(&self) -> usize {
        self.temporary.len()
    }

    /// AssumeRole: temporary credentials of the role's account, or why not.
    pub fn assume_role(
        &mut self,
        caller: &Principal,
        role_arn: &str,
        session: &str,
        external_id: Option<&str>,
    ) -> Result<TemporaryCredentials, String> {
        let denied = || {
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                caller.arn
            )
        };
        let role = self
            .roles
            .iter()
            .find(|r| r.role_arn == role_arn)
            .ok_or_else(denied)?;
        let trusted = role.trusted_accounts.contains(&caller.account);
        let external_ok = role
            .external_id
            .as_deref()
            .is_none_or(|id| Some(id) == external_id);
        if !trusted || !external_ok {
            return Err(denied());
        }
        let account = role_arn.split(':').nth(4).unwrap_or_default().to_string();
        let role_name = role_arn.rsplit('/').next().unwrap_or_default();
        self.issued += 1;
        let access_key_id = format!("{TEMPORARY_PREFIX}{:08X}", self.issued);
        let principal = Principal {
            arn: format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"),
            account,
        };
        self.remember(&access_key_id, &principal);
        Ok(TemporaryCredentials {
            access_key_id,
            secret_access_key: format!("emulated-secret-{:08x}", rand::random::<u32>()),
            session_token: format!("emulated-session-{:016x}", rand::random::<u64>()),
            principal,
        })
    }
}

impl Identities {
    fn remember(&mut self, access_key_id: &str, principal: &Principal) {
        if self.temporary_order.len() == MAX_TEMPORARY_CREDENTIALS
            && let Some(oldest) = self.temporary_order.pop_front()
        {
            self.temporary.remove(&oldest);
        }
        self.temporary
            .insert(access_key_id.to_string(), principal.clone());
        self.temporary_order.push_back(access_key_id.to_string());
    }
}

fn user(account: &str, access_key_id: &str) -> Principal {
    let name: String = access_key_id.chars().take(12).collect();
    Principal {
        account: account.to_string(),
        arn: format!("arn:aws:iam::{account}:user/emulated-{name}"),
    }
}

/// What AssumeRole hands out.
#[derive(Clone, Debug)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub principal: Principal,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However often roles are assumed, the newest credentials are kept and no more; a
    /// forgotten key is expired, not someone else's.
    #[test]
    fn temporary_credentials_are_bounded_and_the_oldest_expire() {
        let role = "arn:aws:iam::222222222222:role/reader";
        let mut ids = Identities::new(
            None,
            &[],
            &[RoleSpec {
                role_arn: role.into(),
                trusted_accounts: vec![DEFAULT_ACCOUNT.into()],
                external_id: None,
            }],
        );
        let caller = ids.principal("AKIDANY");
        let mut keys = Vec::new();
        for _ in 0..MAX_TEMPORARY_CREDENTIALS + 5 {
            keys.push(
                ids.assume_role(&caller, role, "s", None)
                    .unwrap()
                    .access_key_id,
            );
        }
        assert_eq!(ids.temporary_credentials(), MAX_TEMPORARY_CREDENTIALS);
        assert!(ids.expired(&keys[0]) && ids.expired(&keys[4]));
        let newest = keys.last().unwrap();
        assert!(!ids.expired(newest));
        assert_eq!(ids.principal(newest).account, "222222222222");
        assert!(!ids.expired("AKIDANY"), "a long-term key never expires");
    }

    #[test]
    fn keys_roles_and_trust() {
        let mut ids = Identities::new(
            None,
            &[IdentitySpec {
                access_key_id: "AKIDB".into(),
                account: "222222222222".into(),
            }],
            &[RoleSpec {
                role_arn: "arn:aws:iam::222222222222:role/reader".into(),
                trusted_accounts: vec!["123456789012".into()],
                external_id: Some("ext".into()),
            }],
        );
        let a = ids.principal("AKIDANY");
        assert_eq!(a.account, DEFAULT_ACCOUNT);
        assert_eq!(ids.principal("AKIDB").account, "222222222222");
        let role = "arn:aws:iam::222222222222:role/reader";
        assert!(
            ids.assume_role(&a, role, "s", None).is_err(),
            "external ID required"
        );
        let b = ids.principal("AKIDB");
        assert!(
            ids.assume_role(&b, role, "s", Some("ext")).is_err(),
            "B is not trusted"
        );
        let creds = ids.assume_role(&a, role, "s", Some("ext")).unwrap();
        assert_eq!(ids.principal(&creds.access_key_id).account, "222222222222");
        assert_eq!(
            scope(
                "AWS4-HMAC-SHA256 Credential=AKID/20261129/eu-west-1/sts/aws4_request, SignedHeaders=host, Signature=x"
            ),
            Some(Scope {
                access_key_id: "AKID".into(),
                region: "eu-west-1".into(),
                service: "sts".into()
            })
        );
    }
}
