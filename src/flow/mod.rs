//! Flow control: how much work runs at once and in whose turn. Reconciles enter by namespace in
//! turn ([`turns`]), Personalize calls wait for a token of their region's rate, handed out in the
//! same turns ([`rate`]), and the job lists being decided and written share a bound in bytes
//! ([`memory`]).

pub mod memory;
pub mod rate;
pub mod turns;
