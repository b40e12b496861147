//! Placeholder; the criterion benches replace it.
fn main() {}
