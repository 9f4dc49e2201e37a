//! personalize-watch: the operator binary. `run` is the controller (see `run.rs`); `crd` prints
//! the CustomResourceDefinition. The kubectl plugin is a binary of its own (crates/plugin).

use std::process::ExitCode;

use clap::Parser;
use personalize_watch::crd;
use personalize_watch::process::config::{Cli, Command};

/// A reconcile allocates many short-lived strings (a page of job summaries); mimalloc spends
/// about a third of glibc malloc's CPU on them and fragments less (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the version Cargo.lock pins; the Rust
/// bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    return_freed_memory_at_once();
    match Cli::parse().command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => block_on(personalize_watch::process::run::run(*args)),
    }
}

/// Runs `work` as a task of the runtime's workers, not on the main thread: a future the main
/// thread blocks on is woken across threads (a futex and a context switch) each time any I/O
/// it waits for is ready, and the controller waits for I/O many times a poll.
fn block_on(work: impl std::future::Future<Output = ExitCode> + Send + 'static) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(runtime.spawn(work)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: the operator's task ended abnormally: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Memory freed is given back to the system at once rather than a second later: writes of long
/// job lists free large request bodies in bursts, and holding them for a second made the memory
/// curve's peak at 200 summaries 12-18% higher (docs/performance.md, "Memory").
///
/// mimalloc's own `MIMALLOC_PURGE_DELAY`, when set, still decides.
fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one of mimalloc's integer options, which it reads at each purge; no pointer
    // is passed.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_index_names_the_purge_delay() {
        // SAFETY: reads and sets an integer option.
        let (default, set) = unsafe {
            let default = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
            return_freed_memory_at_once();
            (
                default,
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        };
        assert_eq!(default, 1000, "mimalloc's purge delay defaults to 1000 ms");
        assert_eq!(set, 0);
    }
}
