//! The `durafn` command.

fn main() {
    println!("durafn");
}
