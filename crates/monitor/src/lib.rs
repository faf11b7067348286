//! The probes (SIP OPTIONS, STUN Binding, database `SELECT 1`) and the check scheduler.

pub mod scheduler;
