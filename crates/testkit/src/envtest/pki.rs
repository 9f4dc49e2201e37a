//! The control plane's certificates, made with the openssl command: a CA, the API server's
//! serving certificate, the admin's client certificate (group system:masters) and the
//! ServiceAccount signing key.

use std::path::Path;
use std::process::Command;

use super::EnvtestError;

/// Names the API server answers to: loopback, the node's bridge address, the Service address.
const SERVING_NAMES: &str =
    "IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,IP:10.249.0.1,DNS:kubernetes.default.svc";

pub fn make(pki: &Path) -> Result<(), EnvtestError> {
    std::fs::create_dir_all(pki).map_err(|e| EnvtestError::io("creating the PKI folder", e))?;
    let file = |name: &str| pki.join(name).to_string_lossy().into_owned();
    let (ca_key, ca_crt) = (file("ca.key"), file("ca.crt"));
    openssl(
        "the CA",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=personalize-watch-local-ca",
            "-keyout",
            &ca_key,
            "-out",
            &ca_crt,
        ],
    )?;
    let serving_ext = format!("subjectAltName={SERVING_NAMES}\nextendedKeyUsage=serverAuth\n");
    signed(pki, "serving", "/CN=kube-apiserver", &serving_ext)?;
    signed(
        pki,
        "admin",
        "/O=system:masters/CN=admin",
        "extendedKeyUsage=clientAuth\n",
    )?;
    openssl(
        "the ServiceAccount key",
        &["genrsa", "-out", &file("sa.key"), "2048"],
    )?;
    openssl(
        "the ServiceAccount public key",
        &[
            "rsa",
            "-in",
            &file("sa.key"),
            "-pubout",
            "-out",
            &file("sa.pub"),
        ],
    )
}

/// NAME.key and NAME.crt for `subject`, signed by the CA, with the extensions `ext`.
fn signed(pki: &Path, name: &str, subject: &str, ext: &str) -> Result<(), EnvtestError> {
    let file = |suffix: &str| {
        pki.join(format!("{name}.{suffix}"))
            .to_string_lossy()
            .into_owned()
    };
    std::fs::write(file("ext"), ext)
        .map_err(|e| EnvtestError::io("writing a certificate's extensions", e))?;
    let (ca_key, ca_crt) = (
        pki.join("ca.key").to_string_lossy().into_owned(),
        pki.join("ca.crt").to_string_lossy().into_owned(),
    );
    openssl(
        "a certificate request",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &file("key"),
            "-out",
            &file("csr"),
        ],
    )?;
    openssl(
        "a certificate",
        &[
            "x509",
            "-req",
            "-in",
            &file("csr"),
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            &file("ext"),
            "-out",
            &file("crt"),
        ],
    )
}

fn openssl(step: &'static str, args: &[&str]) -> Result<(), EnvtestError> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| EnvtestError::io("running openssl (apt-get install openssl)", e))?;
    if output.status.success() {
        return Ok(());
    }
    Err(EnvtestError::Command {
        step,
        program: "openssl",
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}
