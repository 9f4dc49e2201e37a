//! Solution version ARNs, strictly: the partition, region and account a watch names decide
//! which endpoint gets signed requests and whose jobs are read, so nothing else gets through.
//! The CRD's pattern ([`PATTERN`]) refuses the same strings at apply time; the operator checks
//! again for objects stored before a CRD upgrade.

use std::fmt;

/// `arn:PARTITION:personalize:REGION:ACCOUNT:solution/NAME/ID`, as the CRD's pattern.
pub const PATTERN: &str = concat!(
    r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f):personalize:",
    r"[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:",
    r"solution/[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}/[a-zA-Z0-9_-]{1,63}$"
);
/// `arn:PARTITION:personalize:REGION:ACCOUNT:solution/NAME`, as the CRD's pattern for
/// `spec.solutionArn`.
pub const SOLUTION_PATTERN: &str = concat!(
    r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f):personalize:",
    r"[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:",
    r"solution/[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$"
);
/// A region, as `spec.region`'s pattern.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$";

/// An AWS partition, the DNS suffix of its endpoints, and the regions in it: a region whose
/// dash-separated words start with `region_prefix` and hold one word more (as the SDK's
/// partition regexes say); regions no other partition claims are `aws`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub name: &'static str,
    pub dns_suffix: &'static str,
    region_prefix: &'static str,
}

/// Every partition a watch may name; `aws` (first) takes the regions the others do not.
pub const PARTITIONS: [Partition; 7] = [
    Partition {
        name: "aws",
        dns_suffix: "amazonaws.com",
        region_prefix: "",
    },
    Partition {
        name: "aws-cn",
        dns_suffix: "amazonaws.com.cn",
        region_prefix: "cn",
    },
    Partition {
        name: "aws-us-gov",
        dns_suffix: "amazonaws.com",
        region_prefix: "us-gov",
    },
    Partition {
        name: "aws-iso",
        dns_suffix: "c2s.ic.gov",
        region_prefix: "us-iso",
    },
    Partition {
        name: "aws-iso-b",
        dns_suffix: "sc2s.sgov.gov",
        region_prefix: "us-isob",
    },
    Partition {
        name: "aws-iso-e",
        dns_suffix: "cloud.adc-e.uk",
        region_prefix: "eu-isoe",
    },
    Partition {
        name: "aws-iso-f",
        dns_suffix: "csp.hci.ic.gov",
        region_prefix: "us-isof",
    },
];

impl Partition {
    /// The regex of its regions (for a region that already matches [`REGION_PATTERN`]).
    fn region_regex(&self) -> String {
        format!("^{}-[a-z]+-[0-9]+$", self.region_prefix)
    }
}

/// The partition a region belongs to, as the SDK's endpoint rules decide it.
pub fn partition_of_region(region: &str) -> &'static Partition {
    PARTITIONS[1..]
        .iter()
        .find(|p| {
            region
                .strip_prefix(p.region_prefix)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| rest.split('-').count() == 2)
        })
        .unwrap_or(&PARTITIONS[0])
}

/// The CEL rule (on `spec.solutionVersionArn` and `spec.solutionArn`) that the ARN's partition
/// is its region's.
pub fn partition_rule() -> String {
    let region = "self.split(':')[3]";
    let mut expression = String::from("'aws'");
    for p in PARTITIONS[1..].iter().rev() {
        expression = format!(
            "{region}.matches('{}') ? '{}' : ({expression})",
            p.region_regex(),
            p.name
        );
    }
    format!("self.split(':')[1] == ({expression})")
}

/// What a watch names, strictly parsed by [`WatchedArn::parse_version`] or
/// [`WatchedArn::parse_solution`]: one solution version, or a solution and every version it
/// has or will have (Personalize retrains a solution into new versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedArn {
    text: String,
    pub partition: Partition,
    pub region: String,
    pub account: String,
    pub solution: String,
    /// The version id; none for a solution.
    pub version: Option<String>,
}

/// The parts every Personalize ARN has: partition, region, account, and the resource.
struct Parts<'a> {
    partition: &'static Partition,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn parts(arn: &str) -> Result<Parts<'_>, &'static str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err("it does not have six colon-separated parts");
    };
    if prefix != "arn" || service != "personalize" {
        return Err("not a Personalize ARN");
    }
    let Some(partition) = PARTITIONS.iter().find(|p| p.name == partition) else {
        return Err("unknown partition");
    };
    if !is_region(region) {
        return Err("the region is not like us-east-1");
    }
    if partition_of_region(region).name != partition.name {
        return Err("the region is not in the partition");
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the account is not 12 digits");
    }
    Ok(Parts {
        partition,
        region,
        account,
        resource,
    })
}

impl WatchedArn {
    /// Parses a solution version ARN (`spec.solutionVersionArn`); the error says what is wrong.
    pub fn parse_version(arn: &str) -> Result<Self, String> {
        let wrong = |why: &str| {
            format!(
                "spec.solutionVersionArn {arn:?} is not arn:PARTITION:personalize:REGION:ACCOUNT:solution/NAME/ID: {why}"
            )
        };
        let parts = parts(arn).map_err(wrong)?;
        let Some((solution, version)) = parts
            .resource
            .strip_prefix("solution/")
            .and_then(|r| r.split_once('/'))
        else {
            return Err(wrong("the resource is not solution/NAME/ID"));
        };
        if !is_name(solution, 63, true) || !is_name(version, 63, false) {
            return Err(wrong(
                "the solution name or version id has characters Personalize does not allow",
            ));
        }
        Ok(Self::of(arn, &parts, solution, Some(version)))
    }

    /// Parses a solution ARN (`spec.solutionArn`); the error says what is wrong.
    pub fn parse_solution(arn: &str) -> Result<Self, String> {
        let wrong = |why: &str| {
            format!(
                "spec.solutionArn {arn:?} is not arn:PARTITION:personalize:REGION:ACCOUNT:solution/NAME: {why}"
            )
        };
        let parts = parts(arn).map_err(wrong)?;
        let Some(solution) = parts.resource.strip_prefix("solution/") else {
            return Err(wrong("the resource is not solution/NAME"));
        };
        if !is_name(solution, 63, true) {
            return Err(wrong(
                "the solution name has characters Personalize does not allow (a version ARN goes in spec.solutionVersionArn)",
            ));
        }
        Ok(Self::of(arn, &parts, solution, None))
    }

    fn of(text: &str, parts: &Parts<'_>, solution: &str, version: Option<&str>) -> Self {
        WatchedArn {
            text: text.to_string(),
            partition: *parts.partition,
            region: parts.region.to_string(),
            account: parts.account.to_string(),
            solution: solution.to_string(),
            version: version.map(str::to_string),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A solution, with every version it has or will have.
    pub fn is_solution(&self) -> bool {
        self.version.is_none()
    }

    /// Whether a job of `solution_version_arn` is one this ARN watches.
    pub fn covers(&self, solution_version_arn: &str) -> bool {
        covers(&self.text, solution_version_arn)
    }

    /// The Personalize endpoint of its region, the only host (besides a configured override)
    /// that may get signed requests for it.
    pub fn endpoint(&self) -> String {
        let suffix = partition_of_region(&self.region).dns_suffix;
        format!("https://personalize.{}.{suffix}", self.region)
    }
}

impl fmt::Display for WatchedArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether `arn` names a solution (`...:solution/NAME`, no version id).
pub fn names_a_solution(arn: &str) -> bool {
    arn.rsplit_once(':')
        .and_then(|(_, resource)| resource.strip_prefix("solution/"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// Whether a job of `solution_version_arn` belongs to what `watched` names: a solution version
/// covers itself; a solution (`...:solution/NAME`, no version id) covers `watched/ID` for any
/// one id, and not `.../solution/NAME-2/ID`. Pure text, so the status computation can use it.
pub fn covers(watched: &str, solution_version_arn: &str) -> bool {
    if solution_version_arn == watched {
        return true;
    }
    names_a_solution(watched)
        && solution_version_arn
            .strip_prefix(watched)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// `[a-z]{2}(-[a-z]+)+-[0-9]+`: a DNS label, so it cannot name another host.
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| lower(p))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Personalize's name characters: letters, digits, `_` and `-`, at most `max`; a name starts
/// with a letter or digit.
fn is_name(name: &str, max: usize, leading_alnum: bool) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && (!leading_alnum || name.as_bytes()[0].is_ascii_alphanumeric())
}

/// The property tests' generator, shared with the operator's tests by path: a cargo feature
/// for it would put proptest into the dependency list cargo-auditable records in the binaries.
#[cfg(test)]
#[path = "near_arn.rs"]
pub mod near_arn;

#[cfg(test)]
mod tests {
    use super::near_arn::near_arn;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_and_hostile_arns() {
        let ok = WatchedArn::parse_version(
            "arn:aws:personalize:us-east-1:123456789012:solution/movie-recs/8f2a1c3d",
        )
        .unwrap();
        assert_eq!(ok.endpoint(), "https://personalize.us-east-1.amazonaws.com");
        let cn = WatchedArn::parse_version(
            "arn:aws-cn:personalize:cn-north-1:123456789012:solution/s/v",
        )
        .unwrap();
        assert_eq!(
            cn.endpoint(),
            "https://personalize.cn-north-1.amazonaws.com.cn"
        );
        let gov = WatchedArn::parse_version(
            "arn:aws-us-gov:personalize:us-gov-west-1:123456789012:solution/s/v",
        )
        .unwrap();
        assert_eq!(
            gov.endpoint(),
            "https://personalize.us-gov-west-1.amazonaws.com"
        );
        for hostile in [
            "arn:aws:personalize:evil.test/:123456789012:solution/a/b",
            "arn:aws:personalize:evil:123456789012:solution/a/b",
            "arn:aws:personalize:us-east-1.evil.test:123456789012:solution/a/b",
            "arn:aws:personalize::123456789012:solution/a/b",
            "arn:aws:personalize:us-east-1:1234:solution/a/b",
            "arn:aws:personalize:us-east-1:123456789012:solution/a/b/c",
            "arn:aws:personalize:us-east-1:123456789012:dataset/a/b",
            "arn:evil:personalize:us-east-1:123456789012:solution/a/b",
            "arn:aws:s3:us-east-1:123456789012:solution/a/b",
            "arn:aws:personalize:us-east-1:123456789012:solution/a/b\n",
            "arn:aws:personalize:US-EAST-1:123456789012:solution/a/b",
            "arn:aws:personalize:us-east-1:123456789012:solution/-a/b",
            "arn:aws:personalize:cn-north-1:123456789012:solution/a/b",
            "arn:aws-cn:personalize:us-east-1:123456789012:solution/a/b",
            "arn:aws-cn:personalize:cn-north-west-1:123456789012:solution/a/b",
        ] {
            assert!(
                WatchedArn::parse_version(hostile).is_err(),
                "{hostile:?} accepted"
            );
        }
    }

    #[test]
    fn solution_arns_parse_strictly_and_cover_only_their_own_versions() {
        let recs = "arn:aws:personalize:us-east-1:123456789012:solution/recs";
        let solution = WatchedArn::parse_solution(recs).unwrap();
        assert!(solution.is_solution());
        assert_eq!(solution.solution, "recs");
        assert!(solution.covers(&format!("{recs}/8f2a1c3d")));
        assert!(!solution.covers(&format!("{recs}-2/8f2a1c3d")));
        assert!(!solution.covers(&format!("{recs}/")));
        assert!(!solution.covers(&format!("{recs}/a/b")));
        assert!(!solution.covers("arn:aws:personalize:us-east-1:123456789012:solution/rec/s"));
        let version = WatchedArn::parse_version(&format!("{recs}/v1")).unwrap();
        assert!(!version.is_solution());
        assert!(version.covers(&format!("{recs}/v1")));
        assert!(!version.covers(&format!("{recs}/v1/x")));
        assert!(!version.covers(&format!("{recs}/v2")));
        for hostile in [
            "arn:aws:personalize:us-east-1:123456789012:solution/recs/v1",
            "arn:aws:personalize:us-east-1:123456789012:solution/",
            "arn:aws:personalize:us-east-1:123456789012:solution/-recs",
            "arn:aws:personalize:us-east-1:123456789012:dataset/recs",
            "arn:aws-cn:personalize:us-east-1:123456789012:solution/recs",
            "arn:aws:personalize:us-east-1:1234:solution/recs",
        ] {
            assert!(
                WatchedArn::parse_solution(hostile).is_err(),
                "{hostile:?} accepted"
            );
        }
        let why = WatchedArn::parse_solution(
            "arn:aws:personalize:us-east-1:123456789012:solution/recs/v1",
        )
        .unwrap_err();
        assert!(why.contains("spec.solutionVersionArn"), "{why}");
    }

    /// The generator reaches both sides of the line, so the properties below test something.
    #[test]
    fn near_arns_are_often_accepted_and_often_not() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = near_arn();
        let accepted = (0..2000)
            .filter(|_| {
                let arn = proptest::strategy::ValueTree::current(
                    &strategy.new_tree(&mut runner).unwrap(),
                );
                WatchedArn::parse_version(&arn).is_ok()
            })
            .count();
        assert!(
            (300..1700).contains(&accepted),
            "{accepted} of 2000 accepted"
        );
    }

    /// What the CRD checks: the pattern, then the CEL partition rule (read with the regex
    /// crate, which speaks the RE2 syntax CEL's matches() uses).
    fn schema_accepts(arn: &str) -> bool {
        schema_accepts_with(PATTERN, arn)
    }

    fn schema_accepts_with(pattern: &str, arn: &str) -> bool {
        let pattern = regex::Regex::new(pattern).unwrap();
        if !pattern.is_match(arn) {
            return false;
        }
        let fields: Vec<&str> = arn.split(':').collect();
        let region_partition = PARTITIONS[1..]
            .iter()
            .find(|p| {
                regex::Regex::new(&p.region_regex())
                    .unwrap()
                    .is_match(fields[3])
            })
            .map_or("aws", |p| p.name);
        fields[1] == region_partition
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn the_schema_and_the_parser_agree(arn in near_arn()) {
            prop_assert_eq!(schema_accepts(&arn), WatchedArn::parse_version(&arn).is_ok(), "{:?}", arn);
        }

        /// The same for solution ARNs: a near version ARN without its version id.
        #[test]
        fn the_solution_schema_and_the_parser_agree(arn in near_arn()) {
            let solution = arn.rsplit_once('/').map_or(arn.as_str(), |(head, _)| head);
            prop_assert_eq!(
                schema_accepts_with(SOLUTION_PATTERN, solution),
                WatchedArn::parse_solution(solution).is_ok(),
                "{:?}", solution
            );
        }
    }

    #[test]
    fn the_partition_rule_is_cel_over_the_same_regexes() {
        let rule = partition_rule();
        assert!(
            rule.starts_with(
                "self.split(':')[1] == (self.split(':')[3].matches('^cn-[a-z]+-[0-9]+$') ? 'aws-cn'"
            ),
            "{rule}"
        );
        assert!(
            rule.contains("'^us-isof-[a-z]+-[0-9]+$') ? 'aws-iso-f' : ('aws')"),
            "{rule}"
        );
    }
}
