//! The probes (SIP OPTIONS, STUN Binding, database `SELECT 1`) and the check scheduler.
//!
//! [`probe::check`] answers one question for the scheduler: is this service up right now,
//! and how fast did it answer? Each probe module owns one protocol.

pub mod database;
pub mod probe;
pub mod scheduler;
pub mod sip;
pub mod stun;

pub use probe::{check, Failure, Outcome, ProbeSettings};
