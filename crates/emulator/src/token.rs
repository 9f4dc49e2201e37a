//! Opaque page tokens, bound to the query that made them.
//!
//! A token carries the cursor to resume at (a position or an offset, and the listing it belongs
//! to), a fingerprint of the query (operation and filter), and a keyed checksum over all of it,
//! so a garbled token, or one from another query or another emulator process, is refused with
//! InvalidNextTokenException.

use std::hash::{BuildHasher, Hasher};

/// Where a listing resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The position (insertion order) or offset (other orders) of the next page.
    pub start: u64,
    /// Which listing this is: its omissions hold for all of its pages (0: none).
    pub listing: u64,
}

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

    pub fn encode(&self, operation: &str, filter: Option<&str>, cursor: Cursor) -> String {
        let fingerprint = self.fingerprint(operation, filter);
        let mac = self.mac(cursor, fingerprint);
        // Position first and a version tag, so tokens differ on every page and stay ASCII.
        format!(
            "v2.{:x}.{:x}.{fingerprint:016x}.{mac:016x}",
            cursor.start, cursor.listing
        )
    }

    fn mac(&self, cursor: Cursor, fingerprint: u64) -> u64 {
        self.hash(&[
            &cursor.start.to_be_bytes(),
            &cursor.listing.to_be_bytes(),
            &fingerprint.to_be_bytes(),
        ])
    }

    /// The cursor, if the token is one of ours for this query.
    pub fn decode(&self, token: &str, operation: &str, filter: Option<&str>) -> Option<Cursor> {
        let mut parts = token.split('.');
        if parts.next()? != "v2" {
            return None;
        }
        let mut hex = || u64::from_str_radix(parts.next()?, 16).ok();
        let cursor = Cursor {
            start: hex()?,
            listing: hex()?,
        };
        let fingerprint = hex()?;
        let mac = hex()?;
        if parts.next().is_some() || fingerprint != self.fingerprint(operation, filter) {
            return None;
        }
        (mac == self.mac(cursor, fingerprint)).then_some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_only_for_their_query() {
        let codec = TokenCodec::default();
        let at = |start| Cursor { start, listing: 7 };
        let t = codec.encode("ListBatchInferenceJobs", Some("sv-a"), at(99));
        assert!(t.is_ascii() && t.len() < 1500);
        assert_eq!(
            codec.decode(&t, "ListBatchInferenceJobs", Some("sv-a")),
            Some(at(99))
        );
        assert_eq!(
            codec.decode(&t, "ListBatchInferenceJobs", Some("sv-b")),
            None
        );
        assert_eq!(codec.decode(&t, "ListSolutionVersions", Some("sv-a")), None);
        assert_ne!(
            t,
            codec.encode("ListBatchInferenceJobs", Some("sv-a"), at(199))
        );
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
