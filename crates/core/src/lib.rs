//! switchback's core: config, the model of sites, services and routes, and the pure
//! route state machine. No sockets, SQL or HTTP here.

pub mod clock;
pub mod config;
pub mod engine;
pub mod model;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use engine::{Action, EngineState, Event, EventKind, Mode, RouteState, RouteStatus, Rules, Step};
pub use model::{CheckResult, Role, Route, ServiceId, ServiceKind, SiteNames};
