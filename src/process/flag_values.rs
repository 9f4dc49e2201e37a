//! What the text of a flag means: durations, sizes, accounts, ARN patterns and object names.
//! Each parser returns a message for the person who typed the flag (clap prints it), so
//! `Result<_, String>` is their error type on purpose.

use std::time::Duration;

use crate::access::policy::{self, Account};

/// A Go-style duration such as 30s, 5m or 1h30m.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: kube::core::Duration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 30s, 5m or 1h: {e}"))?;
    if d.is_negative() {
        return Err(format!("{text:?} is negative"));
    }
    Ok(d.into())
}

/// A poll interval: a duration of at least 5s, the floor the CRD enforces too.
pub fn parse_poll_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(5) {
        return Err(format!("{text:?} is below the 5s floor"));
    }
    Ok(d)
}

/// A size in bytes: a whole number with an optional Ki, Mi or Gi suffix, such as 16Mi.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let (number, unit) = [("Gi", 1usize << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        .into_iter()
        .find_map(|(suffix, unit)| text.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((text, 1));
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} is not a size like 16Mi, 512Ki or 1048576"))
}

/// Allowed accounts, as parsed from a flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountList(pub Vec<Account>);

/// ARN patterns, as parsed from a flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArnPatterns(pub Vec<String>);

/// `NAMESPACE/NAME` of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    pub namespace: String,
    pub name: String,
}

pub fn parse_accounts(text: &str) -> Result<AccountList, String> {
    policy::parse_accounts(text).map(AccountList)
}

pub fn parse_arns(text: &str) -> Result<ArnPatterns, String> {
    policy::parse_arns(text).map(ArnPatterns)
}

pub fn parse_object_name(text: &str) -> Result<ObjectName, String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok(ObjectName {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
        }
        _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_bytes("16Mi"), Ok(16 << 20));
        assert_eq!(parse_bytes("512Ki"), Ok(512 << 10));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        for bad in ["", "0", "16MB", "-1Mi", "Mi", "99999999999999999999Gi"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
