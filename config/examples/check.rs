//! Checks configuration files: `cargo run -p iax2-config --example check -- FILE...`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for arg in std::env::args().skip(1) {
        match iax2_config::load(Path::new(&arg)) {
            Ok(config) => println!(
                "{arg}: ok: listen {}, {} peers, {} routes",
                config.listen,
                config.peers.len(),
                config.routes.len()
            ),
            Err(e) => {
                eprintln!("{e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
