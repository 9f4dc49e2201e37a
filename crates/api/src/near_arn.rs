//! Strings near a solution version ARN, for property tests (this crate's and the operator's,
//! which includes this file by path).

use personalize_watch_api::arn::partition_of_region;
use proptest::prelude::*;

/// Strings near a solution version ARN: about half are one, the rest are one part off.
pub fn near_arn() -> impl Strategy<Value = String> {
    let part =
        |choices: &'static [&'static str]| prop::sample::select(choices).prop_map(str::to_string);
    let region = prop_oneof![
        1 => "[a-z.-]{0,3}(-[a-z/]{0,5}){0,3}-?[0-9]{0,2}",
        4 => part(&["us", "eu", "cn", "us-gov", "us-iso", "us-isob", "eu-isoe", "us-isof", "eusc-de", "u1"])
            .prop_flat_map(|p| "(-[a-z]{1,5}){1,2}-[0-9]{1,2}".prop_map(move |r| format!("{p}{r}"))),
    ];
    // The region's own partition most of the time, so that most strings get past it.
    let partition_and_region = (
        region,
        prop::bool::weighted(0.7),
        part(&["aws", "aws-cn", "aws-us-gov", "aws-iso-f", "aws-x", ""]),
    )
        .prop_map(|(region, own, other)| {
            let partition = if own {
                partition_of_region(&region).name.to_string()
            } else {
                other
            };
            (partition, region)
        });
    (
        prop_oneof![6 => Just("arn".to_string()), 1 => part(&["ARN", "arn ", ""])],
        partition_and_region,
        prop_oneof![6 => Just("personalize".to_string()), 1 => part(&["s3", "personalize ", "iam"])],
        prop_oneof![4 => "[0-9]{12}", 1 => "[0-9a]{10,13}"],
        prop_oneof![6 => Just("solution/".to_string()), 1 => part(&["solution", "dataset/", "solution//"])],
        prop_oneof![4 => "[a-zA-Z0-9][a-zA-Z0-9_-]{0,8}", 1 => "[a-zA-Z0-9_./-]{0,5}"],
        prop_oneof![4 => "[a-zA-Z0-9_-]{1,8}", 1 => "[a-zA-Z0-9_./-]{0,5}"],
    )
        .prop_map(|(a, (p, r), s, acct, kind, name, id)| {
            format!("{a}:{p}:{s}:{r}:{acct}:{kind}{name}/{id}")
        })
}
