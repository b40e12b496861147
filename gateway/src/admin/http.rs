//! The admin HTTP listener (`tiny_http`, one thread): `/metrics`,
//! `/status`, `/healthz`, and `POST /reload`. Loopback by default: it has
//! no authentication, so keep it off untrusted networks.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};

use super::state::AdminState;
use super::{metrics, status};

/// How often the listener looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A running admin listener; stops when dropped.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `listen` and serves `state` from a new thread.
    pub fn start(listen: SocketAddr, state: Arc<AdminState>) -> io::Result<Self> {
        let server = Server::http(listen)
            .map_err(|e| io::Error::other(format!("admin listener {listen}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("admin listener: not an IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("iax2-admin".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match server.recv_timeout(POLL) {
                        Ok(Some(req)) => respond(&state, req),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "admin listener failed");
                            thread::sleep(POLL);
                        }
                    }
                }
            })?;
        tracing::info!(listen = %addr, "admin listener started");
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn reply(req: Request, code: u16, content_type: &str, body: String) {
    let mut resp = Response::from_string(body).with_status_code(code);
    if let Some(h) = header("Content-Type", content_type) {
        resp = resp.with_header(h);
    }
    // The client may have gone; nothing to do about it.
    let _ = req.respond(resp);
}

fn respond(state: &Arc<AdminState>, req: Request) {
    let path = req.url().split('?').next().unwrap_or("").to_owned();
    if path == "/reload" {
        if *req.method() != Method::Post {
            return reply(req, 405, "text/plain", "POST /reload\n".to_owned());
        }
        return match state.run_reload() {
            Some(Ok(report)) => reply(req, 200, "text/plain", format!("{report}\n")),
            Some(Err(e)) => reply(req, 422, "text/plain", format!("{e}\n")),
            None => reply(
                req,
                501,
                "text/plain",
                "no configuration file to reload\n".to_owned(),
            ),
        };
    }
    if *req.method() != Method::Get && *req.method() != Method::Head {
        return reply(
            req,
            405,
            "text/plain",
            "only GET, and POST /reload\n".to_owned(),
        );
    }
    match path.as_str() {
        "/metrics" => reply(
            req,
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics::encode(Arc::clone(state)),
        ),
        "/status" => match serde_json::to_string_pretty(&status::collect(state)) {
            Ok(body) => reply(req, 200, "application/json", body),
            Err(e) => reply(req, 500, "text/plain", format!("{e}\n")),
        },
        "/healthz" => {
            if !state.healthy() {
                reply(req, 503, "text/plain", "a worker has stopped\n".to_owned());
            } else if state.draining() {
                // Live calls go on; new ones are refused.
                reply(req, 503, "text/plain", "draining\n".to_owned());
            } else {
                reply(req, 200, "text/plain", "ok\n".to_owned());
            }
        }
        _ => reply(
            req,
            404,
            "text/plain",
            "not found: try /metrics, /status or /healthz\n".to_owned(),
        ),
    }
}
