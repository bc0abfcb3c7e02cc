//! Route lookup benchmarks (filled in by the data-plane work).
fn main() {}
