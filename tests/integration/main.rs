//! Integration and end-to-end tests: one test binary, so one control plane per test run.
//! They run against a real kube-apiserver and etcd (hack/cluster.sh), the emulator and the
//! operator as real processes, and real kubectl, aws-cli and boto3. The harness is the
//! personalize-watch-testkit crate (crates/testkit).

use personalize_watch_testkit as support;

mod bench_harness;
mod bounds;
mod chart;
mod docs;
mod emulator_clients;
mod emulator_sdk;
mod exactly_once;
mod gitops;
mod monitoring;
mod node;
mod operator;
mod packaging;
mod plugin;
mod production;
mod readme;
mod release;
mod reliability;
mod relist;
mod smoke;
mod solutions;
mod tenancy;
mod timeliness;
