//! Logs each change of a gateway link's state (from the gateway's own
//! probes, `trunk_core::relay::LinkView`): one line per change, so a link
//! that flaps shows every flap and a dead one is reported once.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use trunk_core::relay::{LinkState, LinkView, Relay};

/// How often the states are read: the probes' own resolution is the
/// relay's housekeeping turn (250 ms).
const PERIOD: Duration = Duration::from_millis(250);

/// Starts the watcher; it ends once `stop` is set.
pub(crate) fn spawn(relay: Arc<Relay>, stop: Arc<AtomicBool>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("iax2-links".into())
        .spawn(move || {
            let mut last: HashMap<String, LinkState> = HashMap::new();
            while !stop.load(Ordering::Acquire) {
                for link in relay.link_views() {
                    let before = last.insert(link.peer.clone(), link.state);
                    if before.unwrap_or(LinkState::Unknown) != link.state {
                        log(&link);
                    }
                }
                thread::sleep(PERIOD);
            }
        })
}

fn log(link: &LinkView) {
    let rtt_ms = link.rtt.map(|d| d.as_secs_f64() * 1e3);
    match link.state {
        LinkState::Ok => tracing::info!(peer = %link.peer, ?rtt_ms, "gateway link up"),
        LinkState::Lagged => {
            tracing::warn!(peer = %link.peer, ?rtt_ms, "gateway link lagged: probes answered slower than 2 s");
        }
        LinkState::Unreachable => tracing::warn!(
            peer = %link.peer,
            missed = link.misses,
            "gateway link unreachable: probes unanswered (see iax2_gateway_link_up)"
        ),
        LinkState::Unknown => {}
    }
}
