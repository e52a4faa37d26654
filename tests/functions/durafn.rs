//! The `durafn` command, built as part of the test crate so the end-to-end
//! tests can run it as a separate process (and kill it).

fn main() -> std::process::ExitCode {
    durafn_emulator::cli::main_entry()
}
