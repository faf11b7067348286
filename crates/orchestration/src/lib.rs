//! The round and everything that follows from it, for one switchback process: the
//! [`Decider`] persists each step of the route engine before it publishes it; phone
//! files follow the published generation; served-file records are flushed to the
//! store; convergence on a new generation is noticed and announced; history is pruned.
//!
//! The binary wires this to its CLI, listeners and signals; tests drive it in-process
//! with a scripted prober and a paused clock.

mod clock;
mod cluster;
mod decider;
mod error;
mod fetches;
mod generations;
mod orchestrator;
pub mod quorum;
mod scans;
mod upkeep;

pub use clock::TokioClock;
pub use decider::{DecideError, Decider, FORWARD_WITHIN};
pub use error::OpenError;
pub use generations::render;
pub use orchestrator::Orchestrator;
