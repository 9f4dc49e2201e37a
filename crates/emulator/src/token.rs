//! Opaque page tokens, bound to the query that made them.
//!
//! A token carries the position to resume after, a fingerprint of the query (operation and
//! filter), and a keyed checksum over both, so a garbled token, or one from another query or
//! another emulator process, is refused with InvalidNextTokenException.

use std::hash::{BuildHasher, Hasher};

#[derive(Clone)]
pub struct TokenCodec {
    key: std::collections::hash_map::RandomState,
}

impl Default for TokenCodec {
    fn default() -> Self {
        TokenCodec {
            key: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl TokenCodec {
    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut hasher = self.key.build_hasher();
        for part in parts {
            hasher.write(part);
            hasher.write_u8(0xff);
        }
        hasher.finish()
    }

    fn fingerprint(&self, operation: &str, filter: Option<&str>) -> u64 {
        self.hash(&[operation.as_bytes(), filter.unwrap_or("").as_bytes()])
    }

    pub fn encode(&self, operation: &str, filter: Option<&str>, next_start: u64) -> String {
        let fingerprint = self.fingerprint(operation, filter);
        let mac = self.hash(&[&next_start.to_be_bytes(), &fingerprint.to_be_bytes()]);
        // Position first and a version tag, so tokens differ on every page and stay ASCII.
        format!("v1.{next_start:x}.{fingerprint:016x}.{mac:016x}")
    }

    /// The position to resume after, if the token is one of ours for this query.
    pub fn decode(&self, token: &str, operation: &str, filter: Option<&str>) -> Option<u64> {
        let mut parts = token.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let next_start = u64::from_str_radix(parts.next()?, 16).ok()?;
        let fingerprint = u64::from_str_radix(parts.next()?, 16).ok()?;
        let mac = u64::from_str_radix(parts.next()?, 16).ok()?;
        if parts.next().is_some() || fingerprint != self.fingerprint(operation, filter) {
            return None;
        }
        let expected = self.hash(&[&next_start.to_be_bytes(), &fingerprint.to_be_bytes()]);
        (mac == expected).then_some(next_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_only_for_their_query() {
        let codec = TokenCodec::default();
        let t = codec.encode("ListBatchInferenceJobs", Some("sv-a"), 99);
        assert!(t.is_ascii() && t.len() < 1500);
        assert_eq!(
            codec.decode(&t, "ListBatchInferenceJobs", Some("sv-a")),
            Some(99)
        );
        assert_eq!(
            codec.decode(&t, "ListBatchInferenceJobs", Some("sv-b")),
            None
        );
        assert_eq!(codec.decode(&t, "ListSolutionVersions", Some("sv-a")), None);
        assert_ne!(t, codec.encode("ListBatchInferenceJobs", Some("sv-a"), 199));
        let garbled = t.replacen("63", "64", 1);
        assert_eq!(
            codec.decode(&garbled, "ListBatchInferenceJobs", Some("sv-a")),
            None
        );
        assert_eq!(
            codec.decode("garbage", "ListBatchInferenceJobs", Some("sv-a")),
            None
        );
        let other_process = TokenCodec::default();
        assert_eq!(
            other_process.decode(&t, "ListBatchInferenceJobs", Some("sv-a")),
            None
        );
    }
}
