//! `make release` (hack/release.sh), run once per test run against the registry the node pulls
//! from (hack/registry.sh, started with the node): the image index of both platforms, what each
//! image holds, its SBOM referrer, the chart, the sums, the arm64 binary under qemu-user, the
//! Dockerfile against the released config, and the plugin installed by krew from the archives.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::support::command::run;
use crate::support::{self, CommandOutput, Fixture, control_plane, node, tool, total};

/// What one `make release` made.
pub(crate) struct Released {
    /// The registry on loopback (HOST:PORT): pushes, helm.
    pub(crate) registry: String,
    /// The same registry on the node's bridge address: what the node's containerd pulls from.
    pub(crate) node_registry: String,
    /// The image index: `REGISTRY/personalize-watch:VERSION@sha256:...` (release.sh's last line but one).
    pub(crate) image: String,
    /// `oci://REGISTRY/charts/personalize-watch:VERSION` (release.sh's last line).
    pub(crate) chart: String,
    /// PW_RELEASE_DIR: archives, SBOMs, the chart, the krew manifest, SHA256SUMS.
    pub(crate) dir: PathBuf,
}

impl Released {
    pub(crate) fn digest(&self) -> &str {
        self.image.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The chart's `oci://` URL without the version (helm takes it with --version).
    pub(crate) fn chart_url(&self) -> &str {
        self.chart.rsplit_once(':').map_or("", |(url, _)| url)
    }

    pub(crate) fn repository(&self) -> String {
        format!("{}/personalize-watch", self.registry)
    }
}

/// `make release` once per test run, into the cluster's folder (removed with the cluster); under
/// `make test`, the one hack/test.sh made before the tests (its output in PW_RELEASED, its
/// files in PW_RELEASE_DIR).
pub(crate) fn released() -> &'static Released {
    static RELEASED: OnceLock<Released> = OnceLock::new();
    RELEASED.get_or_init(|| {
        let (_, dir) = node();
        let registry_dir = std::fs::read_to_string(dir.join("node/registry-dir"))
            .expect("the node records its registry (hack/node.sh)");
        let mut up = Command::new("bash");
        up.arg(support::repo_root().join("hack/registry.sh"))
            .arg("up")
            .env("PW_REGISTRY_DIR", registry_dir.trim());
        let registry = run(up, None)
            .expect_success()
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("export PW_REGISTRY="))
            .expect("registry.sh up prints export PW_REGISTRY=...")
            .to_string();
        let node_registry = std::fs::read_to_string(dir.join("node/registry"))
            .expect("the node's registry address")
            .trim()
            .to_string();
        let made = std::env::var("PW_RELEASED")
            .ok()
            .zip(std::env::var("PW_RELEASE_DIR").ok());
        let (out, out_dir) = match made {
            Some((refs, out_dir)) => {
                let refs = std::fs::read_to_string(&refs).expect("hack/test.sh's release output");
                (refs, PathBuf::from(out_dir))
            }
            None => {
                let out_dir = dir.join("release");
                let mut release = Command::new("bash");
                release
                    .arg(support::repo_root().join("hack/release.sh"))
                    .env("PW_REGISTRY", &registry)
                    .env("PW_RELEASE_DIR", &out_dir);
                (run(release, None).expect_success(), out_dir)
            }
        };
        let lines: Vec<&str> = out.lines().collect();
        let [image, chart] = lines[lines.len().saturating_sub(2)..] else {
            panic!("release.sh ends with the image and chart references:\n{out}");
        };
        Released {
            registry,
            node_registry,
            image: image.trim().to_string(),
            chart: chart.trim().to_string(),
            dir: out_dir,
        }
    })
}

fn crane(args: &[&str]) -> String {
    let mut command = Command::new(tool("crane"));
    command.args(args);
    run(command, None).expect_success()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Each platform's manifest digest in the index.
pub(crate) fn platforms(r: &Released) -> Vec<(String, String)> {
    let index = json(&crane(&["manifest", &r.image]));
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            let platform = format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or(""),
                m["platform"]["architecture"].as_str().unwrap_or("")
            );
            (platform, m["digest"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

/// The files of an image (its flattened filesystem), with their bytes.
pub(crate) fn files(reference: &str) -> Vec<(String, Vec<u8>)> {
    let dir = node()
        .1
        .join(format!("release-fs-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("a folder for the image's files");
    let tar = dir.join("fs.tar");
    crane(&["export", reference, tar.to_str().expect("utf-8 path")]);
    // Regular files only (their `ls -l` mode starts with "-"), sorted; names hold no spaces.
    let listing = Command::new("tar")
        .arg("-tvf")
        .arg(&tar)
        .output()
        .expect("tar runs");
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let mut names: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let bytes = Command::new("tar")
            .arg("-xOf")
            .arg(&tar)
            .arg(name)
            .output()
            .expect("tar runs")
            .stdout;
        out.push((name.trim_start_matches("./").to_string(), bytes));
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// An ELF file's machine (0x3e x86-64, 0xb7 aarch64) and whether it asks for an interpreter
/// (a dynamically linked program does).
fn elf(bytes: &[u8]) -> (u16, bool) {
    assert!(
        bytes.len() > 64 && bytes.starts_with(b"\x7fELF\x02\x01"),
        "not a 64-bit little-endian ELF"
    );
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, phentsize, phnum) = (
        u64_at(32) as usize,
        u16_at(54) as usize,
        u16_at(56) as usize,
    );
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes")) == PT_INTERP
    });
    (u16_at(18), interp)
}

#[test]
fn the_release_is_an_index_of_two_static_platform_images_each_with_its_sbom() {
    let r = released();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        r.image
            .starts_with(&format!("{}:{version}@sha256:", r.repository())),
        "{}",
        r.image
    );
    assert_eq!(
        r.chart,
        format!("oci://{}/charts/personalize-watch:{version}", r.registry)
    );
    let platforms = platforms(r);
    let names: Vec<&str> = platforms.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64"]);
    for ((platform, digest), machine) in platforms.iter().zip([0x3e, 0xb7]) {
        let reference = format!("{}@{digest}", r.repository());
        let config = json(&crane(&["config", &reference]));
        assert_eq!(
            format!(
                "{}/{}",
                config["os"].as_str().unwrap_or(""),
                config["architecture"].as_str().unwrap_or("")
            ),
            *platform
        );
        assert_eq!(config["config"]["User"], "65532:65532");
        let files = files(&reference);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["etc/ssl/certs/ca-certificates.crt", "personalize-watch"],
            "{platform}: the binary and the CA bundle, nothing else"
        );
        let (found, interpreter) = elf(&files[1].1);
        assert_eq!(found, machine, "{platform}: the binary's ELF machine");
        assert!(!interpreter, "{platform}: a static binary");

        // The SBOM, attached as a referrer of this platform's image: SPDX, the crates linked.
        let mut discover = Command::new(tool("oras"));
        discover.args(["discover", "--plain-http", "--format", "json", &reference]);
        let referrers = json(&run(discover, None).expect_success());
        let sbom = referrers["referrers"].as_array().and_then(|r| {
            r.iter()
                .find(|m| m["artifactType"] == "application/spdx+json")
        });
        assert!(sbom.is_some(), "{platform}: no SPDX referrer:\n{referrers}");
        let arch = platform.trim_start_matches("linux/");
        let spdx = json(
            &std::fs::read_to_string(r.dir.join(format!(
                "personalize-watch-{version}-linux-{arch}.spdx.json"
            )))
            .expect("the SBOM file"),
        );
        let crates: Vec<&str> = spdx["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for linked in [
            "aws-sdk-personalize",
            "kube-runtime",
            "personalize-watch-api",
            "rustls",
        ] {
            assert!(
                crates.contains(&linked),
                "{platform}: the SBOM lacks {linked}"
            );
        }
        for absent in [
            "proptest",
            "personalize-emulator",
            "tower-test",
            "kubectl-personalize-watch",
        ] {
            assert!(
                !crates.contains(&absent),
                "{platform}: the SBOM names {absent}, which the binary does not link"
            );
        }
    }

    // Every released file is in SHA256SUMS, and the sums hold.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&r.dir)
        .output()
        .expect("sha256sum runs");
    let checked = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.status.success(), "{checked}");
    for file in [
        "kubectl-personalize_watch_linux_amd64.tar.gz",
        "kubectl-personalize_watch_linux_arm64.tar.gz",
        &format!("personalize-watch-{version}.tgz"),
        "plugins/personalize-watch.yaml",
    ] {
        assert!(
            checked.contains(&format!("{file}: OK")),
            "{file} not summed:\n{checked}"
        );
    }

    // The chart, from the registry, is this version and names this version's image.
    let mut show = Command::new(tool("helm"));
    show.args([
        "show",
        "chart",
        r.chart_url(),
        "--version",
        version,
        "--plain-http",
    ]);
    let chart = run(show, None).expect_success();
    assert!(
        chart.contains(&format!("\nversion: {version}"))
            && chart.contains(&format!("appVersion: {version}")),
        "{chart}"
    );
}

/// The arm64 image's binary, run by Debian's qemu-user: its version and the CRD it prints; the
/// plugin's arm64 binary from its archive, its version and help.
#[test]
fn the_arm64_binaries_run_under_qemu_user() {
    let r = released();
    let (_, digest) = platforms(r)
        .into_iter()
        .find(|(p, _)| p == "linux/arm64")
        .expect("an arm64 image");
    let files = files(&format!("{}@{digest}", r.repository()));
    let (_, binary) = files
        .iter()
        .find(|(n, _)| n == "personalize-watch")
        .expect("the binary");
    let dir = node().1.join("release-arm64");
    std::fs::create_dir_all(&dir).expect("a folder");
    let operator = dir.join("personalize-watch");
    std::fs::write(&operator, binary).expect("write the binary");
    std::fs::set_permissions(
        &operator,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("make it executable");
    let qemu = |program: &Path, args: &[&str]| {
        let mut command = Command::new(tool("qemu-aarch64"));
        command.arg(program).args(args);
        run(command, None).expect_success()
    };
    let version = qemu(&operator, &["--version"]);
    assert_eq!(
        version.trim(),
        format!("personalize-watch {}", env!("CARGO_PKG_VERSION"))
    );
    let crd = qemu(&operator, &["crd"]);
    let checked_in = std::fs::read_to_string(
        support::repo_root().join("crds/solutionversionwatches.personalize-watch.dev.yaml"),
    )
    .expect("the CRD");
    assert!(
        crd == checked_in,
        "the arm64 binary prints the checked-in CRD"
    );

    let unpack = Command::new("tar")
        .arg("-xzf")
        .arg(r.dir.join("kubectl-personalize_watch_linux_arm64.tar.gz"))
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar runs");
    assert!(unpack.success());
    let plugin = dir.join("kubectl-personalize_watch");
    let bytes = std::fs::read(&plugin).expect("the plugin");
    assert_eq!(elf(&bytes), (0xb7, false), "a static aarch64 plugin");
    assert!(qemu(&plugin, &["--version"]).contains(env!("CARGO_PKG_VERSION")));
    assert!(qemu(&plugin, &["--help"]).contains("Usage: kubectl personalize-watch <COMMAND>"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The final stage's instructions of the Dockerfile, continuation lines joined: (KEYWORD, rest).
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    lines[start..]
        .iter()
        .map(|l| {
            let (keyword, rest) = l.split_once(' ').unwrap_or((l, ""));
            (keyword.to_string(), rest.trim().to_string())
        })
        .collect()
}

/// The Dockerfile (for `docker buildx build --platform linux/amd64,linux/arm64`) and the release
/// build the same image: base, entrypoint, command, user, environment, labels, port and files.
#[test]
fn the_dockerfile_agrees_with_the_released_image() {
    let r = released();
    let dockerfile =
        std::fs::read_to_string(support::repo_root().join("Dockerfile")).expect("the Dockerfile");
    assert!(
        dockerfile.contains("FROM --platform=$BUILDPLATFORM"),
        "the build stage cross-builds on the builder's platform"
    );
    let stage = final_stage(&dockerfile);
    let all = |keyword: &str| {
        stage
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let one = |keyword: &str| {
        all(keyword)
            .pop()
            .unwrap_or_else(|| panic!("no {keyword} in the final stage"))
    };
    assert_eq!(one("FROM"), "scratch");
    let version = one("ARG")
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .expect("ARG VERSION=...");
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "the Dockerfile's VERSION default follows the crate"
    );
    let pairs = |text: &str| -> Vec<(String, String)> {
        let re = regex::Regex::new(r#"([\w.]+)=("[^"]*"|\S+)"#).expect("regex");
        re.captures_iter(text)
            .map(|c| {
                (
                    c[1].to_string(),
                    c[2].trim_matches('"').replace("${VERSION}", &version),
                )
            })
            .collect()
    };
    let labels: serde_json::Map<String, Value> = pairs(&all("LABEL").join(" "))
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let env: Vec<String> = pairs(&all("ENV").join(" "))
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let copied: Vec<String> = all("COPY")
        .iter()
        .filter_map(|c| c.split_whitespace().last())
        .map(|d| d.trim_start_matches('/').to_string())
        .collect();
    let expose = format!("{}/tcp", one("EXPOSE"));

    for (platform, digest) in platforms(r) {
        let reference = format!("{}@{digest}", r.repository());
        let config = json(&crane(&["config", &reference]));
        let c = &config["config"];
        assert_eq!(c["Entrypoint"], json(&one("ENTRYPOINT")), "{platform}");
        assert_eq!(c["Cmd"], json(&one("CMD")), "{platform}");
        assert_eq!(c["User"], Value::String(one("USER")), "{platform}");
        assert_eq!(
            c["Env"],
            json(&serde_json::to_string(&env).expect("env")),
            "{platform}"
        );
        assert_eq!(c["Labels"], Value::Object(labels.clone()), "{platform}");
        let ports: Vec<&String> = c["ExposedPorts"]
            .as_object()
            .map(|p| p.keys().collect())
            .unwrap_or_default();
        assert_eq!(ports, [&expose], "{platform}");
        let mut names: Vec<String> = files(&reference).into_iter().map(|(n, _)| n).collect();
        names.sort();
        let mut want = copied.clone();
        want.sort();
        assert_eq!(names, want, "{platform}: the files the Dockerfile copies");
    }
}

/// krew's own validation accepts the manifest `make release` wrote; krew installs the plugin
/// from the release's archive, and `kubectl personalize-watch list -A` shows a synced watch.
#[tokio::test]
async fn krew_installs_the_plugin_from_the_release_and_it_lists_every_namespace() {
    let r = released();
    let manifest = r.dir.join("plugins/personalize-watch.yaml");
    let text = std::fs::read_to_string(&manifest).expect("the krew manifest");
    for arch in ["amd64", "arm64"] {
        let archive = r
            .dir
            .join(format!("kubectl-personalize_watch_linux_{arch}.tar.gz"));
        let sum = sha256(&archive);
        assert!(
            text.contains(&format!("sha256: {sum}")),
            "{arch}'s archive sum not in the manifest:\n{text}"
        );
    }
    // -skip-install: its install step downloads the manifest's URIs; krew install below uses the
    // local archive instead.
    let mut validate = Command::new(tool("validate-krew-manifest"));
    validate
        .arg("-manifest")
        .arg(&manifest)
        .arg("-skip-install");
    let validated = run(validate, None);
    assert!(
        validated.success,
        "krew's validation refused the manifest:\n{}",
        validated.text()
    );

    let f = Fixture::start("krew").await;
    let sv = support::solution_version_arn("krew");
    f.emu.generate(&sv, 4, "ACTIVE", "nightly").await;
    f.apply_watch("nightly", &sv, "").await;
    f.wait_status("nightly", Duration::from_secs(30), "4 jobs", |w| {
        total(w) == Some(4)
    })
    .await;

    let root = node().1.join(format!("krew-{:08x}", rand::random::<u32>()));
    let mut install = Command::new(tool("krew"));
    install
        .arg("install")
        .arg(format!("--manifest={}", manifest.display()))
        .arg(format!(
            "--archive={}",
            r.dir
                .join("kubectl-personalize_watch_linux_amd64.tar.gz")
                .display()
        ))
        .env("KREW_ROOT", &root);
    let installed = run(install, None);
    assert!(
        installed.success,
        "krew install failed:\n{}",
        installed.text()
    );
    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut list = Command::new(tool("kubectl"));
    list.args(["personalize-watch", "list", "-A"])
        .env("PATH", path)
        .env("KUBECONFIG", &control_plane().kubeconfig);
    let listed: CommandOutput = run(list, None);
    let _ = std::fs::remove_dir_all(&root);
    assert!(listed.success, "{}", listed.text());
    let row: Option<Vec<&str>> = listed
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&f.ns.as_str()) && fields.get(1) == Some(&"nightly"));
    // NAMESPACE NAME READY TOTAL ACTIVE ...
    assert!(
        row.is_some_and(|r| r[2] == "True" && r[3] == "4" && r[4] == "4"),
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.starts_with("NAMESPACE"), "{}", listed.stdout);
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
