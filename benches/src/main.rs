//! Durafn's benchmarks.

fn main() {}
