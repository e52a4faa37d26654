//! The `durafn` command.

fn main() -> std::process::ExitCode {
    durafn_emulator::cli::main_entry()
}
