//! Reloading the configuration file into a running gateway: what SIGHUP,
//! `iax2-gateway reload` and the admin listener's `POST /reload` do.
//!
//! The file is validated first, exactly as `check-config` does; a file
//! that does not validate changes nothing and its error is returned (and
//! counted). A valid one replaces peers, routes and timers at once for
//! every worker ([`Relay::reload`](trunk_core::relay::Relay::reload)); the
//! calls in progress go on. What only new calls see, and what needs a
//! restart (`listen`, `workers`, the admin listener), is in the report.

use std::net::SocketAddr;
use std::path::Path;

use trunk_core::relay::ReloadReport;

use crate::admin::AdminState;
use crate::lifecycle::notify;

/// Loads `path` and applies it; `admin_listen` is where the admin
/// listener runs now (it cannot move without a restart).
pub fn reload_file(
    path: &Path,
    state: &AdminState,
    admin_listen: Option<SocketAddr>,
) -> Result<ReloadReport, String> {
    notify::reloading();
    let result = iax2_config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let mut report = state.relay().reload(&config)?;
            if config.admin.listen != admin_listen {
                report.need_restart.push(format!(
                    "admin.listen {}",
                    config
                        .admin
                        .listen
                        .map_or_else(|| "none".to_owned(), |a| a.to_string())
                ));
            }
            Ok(report)
        });
    state.count_reload(result.is_ok());
    match &result {
        Ok(report) => tracing::info!(file = %path.display(), "configuration reloaded: {report}"),
        Err(e) => tracing::error!(
            file = %path.display(),
            "configuration NOT reloaded, the running one stays: {e}"
        ),
    }
    notify::reloaded(state.counters_len());
    result
}
