//! Who may watch what: the access policy cluster admins set, never a watch's author.
//!
//! A namespace's annotations name the accounts (`personalize-watch.dev/allowed-accounts`) and
//! ARN patterns (`personalize-watch.dev/allowed-arns`, `*` matching any run of characters) its
//! watches may name; the operator's flags give the defaults for namespaces without them.
//! `self` stands for the account of the operator's own identity. A watch outside the policy is
//! refused before any AWS call.

use std::collections::BTreeMap;

use crate::access::arn::WatchedArn;

pub const ALLOWED_ACCOUNTS: &str = "personalize-watch.dev/allowed-accounts";
pub const ALLOWED_ARNS: &str = "personalize-watch.dev/allowed-arns";
/// The keyword for the operator's own account.
pub const OWN_ACCOUNT: &str = "self";

/// One allowed account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Account {
    /// The account of the operator's own identity.
    Own,
    Id(String),
}

/// A list of allowed accounts or ARN patterns, and where it came from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule<T> {
    pub entries: Vec<T>,
    pub source: String,
}

/// The policy for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub accounts: Rule<Account>,
    pub arns: Rule<String>,
}

/// The operator-wide defaults, from its flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub accounts: Vec<Account>,
    pub arns: Vec<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            accounts: vec![Account::Own],
            arns: vec!["*".into()],
        }
    }
}

/// What the policy says of a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Permitted,
    /// Refused; the message names the rule that refused it.
    Refused(String),
    /// The policy allows the operator's own account, which is not known yet.
    OwnAccountUnknown,
}

/// Accounts: comma-separated 12-digit IDs or `self`.
pub fn parse_accounts(text: &str) -> Result<Vec<Account>, String> {
    entries(text)
        .map(|entry| match entry {
            OWN_ACCOUNT => Ok(Account::Own),
            id if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Account::Id(id.to_string()))
            }
            other => Err(format!(
                "{other:?} is neither a 12-digit account ID nor {OWN_ACCOUNT:?}"
            )),
        })
        .collect()
}

/// ARN patterns: comma-separated, `*` as a wildcard.
pub fn parse_arns(text: &str) -> Result<Vec<String>, String> {
    let patterns: Vec<String> = entries(text).map(str::to_string).collect();
    match patterns.iter().find(|p| p.chars().any(char::is_whitespace)) {
        Some(p) => Err(format!("ARN pattern {p:?} holds whitespace")),
        None => Ok(patterns),
    }
}

fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

impl Policy {
    /// The policy of a namespace with these annotations. A malformed annotation refuses every
    /// watch of the namespace (it fails closed) with a message saying what is wrong.
    pub fn of_namespace(
        namespace: &str,
        annotations: Option<&BTreeMap<String, String>>,
        defaults: &Defaults,
    ) -> Result<Policy, String> {
        let annotation = |key: &str| annotations.and_then(|a| a.get(key));
        let invalid = |key: &str, e: String| {
            format!("the annotation {key} of namespace {namespace} is not valid: {e}")
        };
        let accounts = match annotation(ALLOWED_ACCOUNTS) {
            Some(text) => Rule {
                entries: parse_accounts(text).map_err(|e| invalid(ALLOWED_ACCOUNTS, e))?,
                source: format!("the annotation {ALLOWED_ACCOUNTS} of namespace {namespace}"),
            },
            None => Rule {
                entries: defaults.accounts.clone(),
                source: "the operator's --default-allowed-accounts".into(),
            },
        };
        let arns = match annotation(ALLOWED_ARNS) {
            Some(text) => Rule {
                entries: parse_arns(text).map_err(|e| invalid(ALLOWED_ARNS, e))?,
                source: format!("the annotation {ALLOWED_ARNS} of namespace {namespace}"),
            },
            None => Rule {
                entries: defaults.arns.clone(),
                source: "the operator's --default-allowed-arns".into(),
            },
        };
        Ok(Policy { accounts, arns })
    }

    /// Whether a watch may name `arn`; `own_account` is the operator's, when known.
    pub fn judge(&self, arn: &WatchedArn, own_account: Option<&str>) -> Verdict {
        let mut needs_own = false;
        let account_allowed = self.accounts.entries.iter().any(|a| match a {
            Account::Id(id) => *id == arn.account,
            Account::Own => match own_account {
                Some(own) => own == arn.account,
                None => {
                    needs_own = true;
                    false
                }
            },
        });
        if !account_allowed {
            if needs_own {
                return Verdict::OwnAccountUnknown;
            }
            return Verdict::Refused(format!(
                "account {} is not allowed by {} (it allows {})",
                arn.account,
                self.accounts.source,
                describe(&self.accounts.entries)
            ));
        }
        let text = arn.to_string();
        if !self.arns.entries.iter().any(|p| allows(p, arn)) {
            return Verdict::Refused(format!(
                "{text} matches no pattern of {} ({})",
                self.arns.source,
                self.arns.entries.join(", ")
            ));
        }
        Verdict::Permitted
    }
}

/// Whether `pattern` allows watching `arn`. A solution version's ARN must match. A solution
/// watch reads every version the solution has or will have, so its ARN must match, or else
/// every version ARN of it must: the pattern matches `ARN/` followed by a space, which no
/// pattern holds, so only a `*` at its end can take it (and any version id in its place).
/// `.../solution/recs/*` and `.../solution/rec*` allow the solution `recs`;
/// `.../solution/recs/v1` does not.
fn allows(pattern: &str, arn: &WatchedArn) -> bool {
    let text = arn.as_str();
    glob(pattern, text) || (arn.is_solution() && glob(pattern, &format!("{text}/ ")))
}

/// The allowed accounts for a message; the operator's own stays unnamed.
fn describe(accounts: &[Account]) -> String {
    if accounts.is_empty() {
        return "no account".into();
    }
    accounts
        .iter()
        .map(|a| match a {
            Account::Own => "the operator's own account".to_string(),
            Account::Id(id) => id.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solution_watches_need_a_pattern_that_allows_every_version() {
        let solution =
            WatchedArn::parse_solution("arn:aws:personalize:us-east-1:222222222222:solution/recs")
                .unwrap();
        let base = "arn:aws:personalize:us-east-1:222222222222:solution/";
        for allowed in [
            format!("{base}recs"),
            format!("{base}recs/*"),
            format!("{base}rec*"),
            "*".to_string(),
            "arn:aws:personalize:*:222222222222:solution/*".to_string(),
        ] {
            assert!(allows(&allowed, &solution), "{allowed} should allow it");
        }
        for refused in [
            format!("{base}recs/v1"),
            format!("{base}recs/v*"),
            format!("{base}recs/*/x"),
            format!("{base}recs-*"),
            format!("{base}other/*"),
        ] {
            assert!(!allows(&refused, &solution), "{refused} should refuse it");
        }
        let version = arn("222222222222", "recs");
        assert!(allows(&format!("{base}recs/*"), &version));
        assert!(!allows(&format!("{base}recs"), &version));
    }

    fn arn(account: &str, solution: &str) -> WatchedArn {
        WatchedArn::parse_version(&format!(
            "arn:aws:personalize:us-east-1:{account}:solution/{solution}/v1"
        ))
        .unwrap()
    }

    fn annotated(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_allow_only_the_operators_own_account() {
        let policy = Policy::of_namespace("team-a", None, &Defaults::default()).unwrap();
        let own = "111111111111";
        assert_eq!(policy.judge(&arn(own, "s"), Some(own)), Verdict::Permitted);
        let Verdict::Refused(why) = policy.judge(&arn("222222222222", "s"), Some(own)) else {
            panic!("another account allowed")
        };
        assert!(
            why.contains("--default-allowed-accounts") && !why.contains(own),
            "{why}"
        );
        assert_eq!(
            policy.judge(&arn(own, "s"), None),
            Verdict::OwnAccountUnknown
        );
    }

    #[test]
    fn annotations_replace_the_defaults_and_fail_closed() {
        let a = annotated(&[
            (ALLOWED_ACCOUNTS, "222222222222, self"),
            (
                ALLOWED_ARNS,
                "arn:aws:personalize:*:222222222222:solution/team-a-*",
            ),
        ]);
        let policy = Policy::of_namespace("team-a", Some(&a), &Defaults::default()).unwrap();
        assert_eq!(
            policy.judge(&arn("222222222222", "team-a-recs"), None),
            Verdict::Permitted
        );
        let Verdict::Refused(why) = policy.judge(&arn("222222222222", "team-b-recs"), None) else {
            panic!("pattern ignored")
        };
        assert!(why.contains(ALLOWED_ARNS), "{why}");
        let broken = annotated(&[(ALLOWED_ACCOUNTS, "everyone")]);
        let err = Policy::of_namespace("team-a", Some(&broken), &Defaults::default()).unwrap_err();
        assert!(
            err.contains(ALLOWED_ACCOUNTS) && err.contains("everyone"),
            "{err}"
        );
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob(
            "arn:*:solution/a*",
            "arn:aws:personalize:solution/abc"
        ));
        assert!(!glob("arn:*:solution/a*", "arn:aws:personalize:solution/b"));
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b*c", "aXcYb"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert!(!glob("ab*ba", "aba"), "prefix and suffix may not overlap");
    }
}
