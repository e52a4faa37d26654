//! The soak runner (see docs/reliability.md); being written.

fn main() {}
