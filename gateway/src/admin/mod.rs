//! The admin interface: Prometheus metrics, a JSON status document and a
//! health check on an HTTP listener, and the tables of
//! `iax2-gateway status`.

pub mod client;
mod http;
pub mod metrics;
mod process;
mod state;
pub mod status;

pub use http::AdminServer;
pub use state::{AdminState, ReloadHook};
