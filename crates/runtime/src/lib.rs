//! Process plumbing that the operator and the emulator share: logging set-up, the shutdown
//! signal, and one HTTP/1.1 serve loop with graceful drain.

pub mod serve;
pub mod shutdown;
pub mod telemetry;

pub use serve::serve;
pub use shutdown::Shutdown;
