//! Whether a watch may be listed, and with which credentials: the namespace's access policy
//! (see [`crate::access::policy`]), the operator's own account, and the roles to assume for other
//! accounts (the ConfigMap named by `--account-roles`, kept current by a watch).

pub use personalize_watch_api::arn;
pub mod policy;
pub mod sources;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;

use crate::access::arn::WatchedArn;
use crate::access::policy::{Defaults, Policy, Verdict};
use crate::error::Error;

/// A role to assume for an account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleRef {
    pub role_arn: String,
    pub external_id: Option<String>,
}

/// The account-to-role map: keys are account IDs and values role ARNs; a key
/// `ACCOUNT.externalId` adds an external ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountRoles {
    roles: HashMap<String, RoleRef>,
    /// Entries that are not valid, by account: watches of those accounts are refused.
    problems: HashMap<String, String>,
}

impl AccountRoles {
    pub fn from_data(data: &BTreeMap<String, String>) -> Self {
        let mut map = AccountRoles::default();
        for (key, value) in data {
            if key.ends_with(".externalId") {
                continue;
            }
            let value = value.trim();
            let is_account = key.len() == 12 && key.bytes().all(|b| b.is_ascii_digit());
            if !is_account {
                map.problems.insert(
                    key.clone(),
                    format!("key {key:?} is not a 12-digit account ID"),
                );
            } else if !is_role_arn(value) {
                map.problems
                    .insert(key.clone(), format!("{value:?} is not an IAM role ARN"));
            } else {
                let external_id = data
                    .get(&format!("{key}.externalId"))
                    .map(|v| v.trim().to_string());
                map.roles.insert(
                    key.clone(),
                    RoleRef {
                        role_arn: value.to_string(),
                        external_id,
                    },
                );
            }
        }
        map
    }

    /// Accounts whose role or problem differs between `self` and `other`.
    fn changed_accounts(&self, other: &AccountRoles) -> HashSet<String> {
        let keys = self.roles.keys().chain(self.problems.keys());
        let other_keys = other.roles.keys().chain(other.problems.keys());
        keys.chain(other_keys)
            .filter(|a| {
                self.roles.get(*a) != other.roles.get(*a)
                    || self.problems.get(*a) != other.problems.get(*a)
            })
            .cloned()
            .collect()
    }

    /// The role for an account, if one is mapped; an error when its entry is not valid.
    pub fn role_for(&self, account: &str) -> Result<Option<&RoleRef>, InvalidRoleEntry> {
        if let Some(problem) = self.problems.get(account) {
            return Err(InvalidRoleEntry {
                account: account.to_string(),
                problem: problem.clone(),
            });
        }
        Ok(self.roles.get(account))
    }
}

/// An account-roles ConfigMap entry that cannot be used.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("the account-roles ConfigMap's entry for account {account} is not valid: {problem}")]
pub struct InvalidRoleEntry {
    pub account: String,
    pub problem: String,
}

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts[..], ["arn", p, "iam", "", account, resource]
        if p.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.starts_with("role/")
            && resource.len() > 5
            && !resource.contains(char::is_whitespace))
}

/// A namespace annotation choosing the role for one account in that namespace:
/// `personalize-watch.dev/role.ACCOUNT`, a role ARN in ACCOUNT, with
/// `personalize-watch.dev/external-id.ACCOUNT` for its external ID. It takes the place of the
/// account-roles ConfigMap's entry there, so two teams allowed one account can use different
/// roles. Like the policy annotations, only whoever may edit the Namespace can set it.
pub const NAMESPACE_ROLE_PREFIX: &str = "personalize-watch.dev/role.";
/// See [`NAMESPACE_ROLE_PREFIX`].
pub const NAMESPACE_EXTERNAL_ID_PREFIX: &str = "personalize-watch.dev/external-id.";

/// The role `annotations` choose for `account`, if any; an error naming the annotation when
/// it is not a role ARN in that account.
fn namespace_role(
    annotations: &PolicyAnnotations,
    namespace: &str,
    account: &str,
) -> Result<Option<RoleRef>, String> {
    let key = format!("{NAMESPACE_ROLE_PREFIX}{account}");
    let Some(role_arn) = annotations.get(&key).map(|v| v.trim()) else {
        return Ok(None);
    };
    if !is_role_arn(role_arn) || role_arn.split(':').nth(4) != Some(account) {
        return Err(format!(
            "the annotation {key} of namespace {namespace} is not valid: {role_arn:?} is not an IAM role ARN in account {account}"
        ));
    }
    let external_id = annotations
        .get(&format!("{NAMESPACE_EXTERNAL_ID_PREFIX}{account}"))
        .map(|v| v.trim().to_string());
    Ok(Some(RoleRef {
        role_arn: role_arn.to_string(),
        external_id,
    }))
}

/// Whether an annotation key is one the access decision reads.
pub fn is_access_annotation(key: &str) -> bool {
    key == policy::ALLOWED_ACCOUNTS
        || key == policy::ALLOWED_ARNS
        || key.starts_with(NAMESPACE_ROLE_PREFIX)
        || key.starts_with(NAMESPACE_EXTERNAL_ID_PREFIX)
}

/// What a permitted watch is listed with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// The role to assume, or None for the operator's own credentials.
    pub role: Option<RoleRef>,
}

/// A namespace's access annotations, policy and roles (only those: the rest of the object is
/// not kept).
pub type PolicyAnnotations = BTreeMap<String, String>;

/// The access decision's inputs that change while the operator runs, kept current by
/// [`crate::access::sources`].
pub struct Access {
    defaults: Defaults,
    roles: RwLock<AccountRoles>,
    namespaces: RwLock<HashMap<String, PolicyAnnotations>>,
}

impl Access {
    pub fn new(defaults: Defaults) -> Self {
        Access {
            defaults,
            roles: RwLock::default(),
            namespaces: RwLock::default(),
        }
    }

    /// The ConfigMap of account roles changed (or is gone: an empty map). Returns the accounts
    /// whose entry changed.
    pub fn set_roles(&self, roles: AccountRoles) -> HashSet<String> {
        let mut current = self.roles.write().unwrap_or_else(|p| p.into_inner());
        let changed = current.changed_accounts(&roles);
        *current = roles;
        changed
    }

    /// A namespace's policy annotations, as last seen; false when they did not change.
    pub fn set_namespace(&self, namespace: &str, annotations: PolicyAnnotations) -> bool {
        let mut namespaces = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
        namespaces.insert(namespace.to_string(), annotations.clone()) != Some(annotations)
    }

    /// A namespace is gone.
    pub fn forget_namespace(&self, namespace: &str) {
        let mut namespaces = self.namespaces.write().unwrap_or_else(|p| p.into_inner());
        namespaces.remove(namespace);
    }

    /// Whether a watch in `namespace` may list `arn`, and how. `own_account` is the
    /// operator's, when known.
    pub fn authorize(
        &self,
        namespace: &str,
        arn: &WatchedArn,
        own_account: Option<&str>,
    ) -> Result<Grant, Error> {
        let (policy, chosen_role) = {
            let namespaces = self.namespaces.read().unwrap_or_else(|p| p.into_inner());
            // Unseen, a namespace might hold annotations narrower than the defaults.
            let Some(annotations) = namespaces.get(namespace) else {
                return Err(Error::AccessUnknown(format!(
                    "the operator has not seen namespace {namespace} yet, so not its access policy"
                )));
            };
            (
                Policy::of_namespace(namespace, Some(annotations), &self.defaults),
                namespace_role(annotations, namespace, &arn.account),
            )
        };
        let policy = policy.map_err(Error::NotPermitted)?;
        match policy.judge(arn, own_account) {
            Verdict::Permitted => {}
            Verdict::Refused(why) => return Err(Error::NotPermitted(why)),
            Verdict::OwnAccountUnknown => {
                return Err(Error::AccessUnknown(
                    "the policy allows the operator's own account, which STS GetCallerIdentity has not told yet".into(),
                ));
            }
        }
        if let Some(role) = chosen_role.map_err(Error::NotPermitted)? {
            return Ok(Grant { role: Some(role) });
        }
        let roles = self.roles.read().unwrap_or_else(|p| p.into_inner());
        let role = roles
            .role_for(&arn.account)
            .map_err(|e| Error::NotPermitted(e.to_string()))?;
        // The operator's own account needs no role (unless one is mapped for it).
        Ok(Grant {
            role: role.cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::policy::{ALLOWED_ACCOUNTS, Account};

    /// A namespace's role annotation takes the place of the ConfigMap's role for its account
    /// there, and only there; one that names a role in another account is refused, named.
    #[test]
    fn a_namespace_chooses_its_own_role_for_an_account() {
        let access = Access::new(Defaults {
            accounts: vec![Account::Id("111111111111".into())],
            arns: vec!["*".into()],
        });
        let data: BTreeMap<String, String> = [(
            "222222222222".to_string(),
            "arn:aws:iam::222222222222:role/shared".to_string(),
        )]
        .into();
        access.set_roles(AccountRoles::from_data(&data));
        let annotations = |pairs: &[(&str, &str)]| -> PolicyAnnotations {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let allowed = (ALLOWED_ACCOUNTS, "222222222222");
        access.set_namespace("shared", annotations(&[allowed]));
        let own = "arn:aws:iam::222222222222:role/team-c";
        access.set_namespace(
            "team-c",
            annotations(&[
                allowed,
                ("personalize-watch.dev/role.222222222222", own),
                ("personalize-watch.dev/external-id.222222222222", "team-c"),
            ]),
        );
        let other_account = "arn:aws:iam::333333333333:role/elsewhere";
        access.set_namespace(
            "wrong",
            annotations(&[
                allowed,
                ("personalize-watch.dev/role.222222222222", other_account),
            ]),
        );
        let arn =
            WatchedArn::parse_version("arn:aws:personalize:us-east-1:222222222222:solution/s/v1")
                .unwrap();
        let role = |ns: &str| access.authorize(ns, &arn, None).map(|g| g.role);
        let shared = role("shared").unwrap().unwrap();
        assert_eq!(shared.role_arn, "arn:aws:iam::222222222222:role/shared");
        assert_eq!(
            role("team-c").unwrap(),
            Some(RoleRef {
                role_arn: own.into(),
                external_id: Some("team-c".into())
            })
        );
        let refused = role("wrong").unwrap_err().to_string();
        assert!(
            refused.contains("personalize-watch.dev/role.222222222222")
                && refused.contains("not an IAM role ARN in account 222222222222"),
            "{refused}"
        );
    }

    #[test]
    fn roles_by_account_with_external_ids() {
        let data: BTreeMap<String, String> = [
            (
                "222222222222",
                "arn:aws:iam::222222222222:role/personalize-reader",
            ),
            ("222222222222.externalId", "team-b"),
            ("333333333333", "arn:aws:s3:::bucket"),
            ("team-c", "arn:aws:iam::444444444444:role/x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let roles = AccountRoles::from_data(&data);
        let role = roles.role_for("222222222222").unwrap().unwrap();
        assert_eq!(role.external_id.as_deref(), Some("team-b"));
        assert!(
            roles
                .role_for("333333333333")
                .unwrap_err()
                .to_string()
                .contains("not an IAM role ARN")
        );
        assert_eq!(roles.role_for("111111111111"), Ok(None));
    }
}
