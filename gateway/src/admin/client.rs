//! What `iax2-gateway status` and `reload` use to ask a running gateway:
//! plain HTTP to its admin listener.

use std::net::SocketAddr;
use std::time::Duration;

/// GETs `path` from the admin listener at `addr`; the body, or an error
/// that says what to check.
pub fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let url = format!("http://{addr}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut resp = agent.get(&url).call().map_err(|e| {
        format!("{url}: {e} (is the gateway running, with its admin listener on {addr}?)")
    })?;
    resp.body_mut()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))
}

/// POSTs to `path` on the admin listener at `addr`: `Ok(body)` on 2xx,
/// `Err(body or error)` otherwise.
pub fn post(addr: SocketAddr, path: &str) -> Result<String, String> {
    let url = format!("http://{addr}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.post(&url).send_empty().map_err(|e| {
        format!("{url}: {e} (is the gateway running, with its admin listener on {addr}?)")
    })?;
    let ok = resp.status().is_success();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    if ok {
        Ok(body)
    } else {
        Err(body)
    }
}
