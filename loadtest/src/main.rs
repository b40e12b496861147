//! `loadtest`: the iax2-trunk call-load generator.

fn main() {}
