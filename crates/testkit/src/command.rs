//! Commands the tests run: kubectl, helm and the checkers, with their output as a named type.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{control_plane, tool};

/// What a command printed and whether it succeeded.
#[derive(Clone, Debug)]
pub struct CommandOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Panics with both streams unless the command succeeded; returns stdout.
    pub fn expect_success(self) -> String {
        assert!(
            self.success,
            "command failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    /// Both streams, for messages and matching.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `program` with `args`, `input` on its standard input, and waits for it.
pub fn run(mut command: Command, input: Option<&str>) -> CommandOutput {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
    let stdin = child.stdin.take();
    if let (Some(text), Some(mut stdin)) = (input, stdin) {
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("command output");
    CommandOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `program args...` with `input` on standard input.
pub fn run_program(program: &Path, args: &[&str], input: Option<&str>) -> CommandOutput {
    let mut command = Command::new(program);
    command.args(args);
    run(command, input)
}

/// kubectl against the test control plane.
pub fn kubectl(args: &[&str]) -> CommandOutput {
    kubectl_with_input(args, None)
}

pub fn kubectl_with_input(args: &[&str], input: Option<&str>) -> CommandOutput {
    let mut command = Command::new(tool("kubectl"));
    command
        .args(args)
        .env("KUBECONFIG", &control_plane().kubeconfig);
    run(command, input)
}

/// helm, from the repository root.
pub fn helm(args: &[&str]) -> CommandOutput {
    let mut command = Command::new(tool("helm"));
    command.args(args).current_dir(super::repo_root());
    run(command, None)
}
