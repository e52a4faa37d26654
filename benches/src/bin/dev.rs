//! `durafn`, built as a binary of the benchmark crate so the emulator
//! benchmarks can start `durafn dev` as its own process (and stop it).

fn main() -> std::process::ExitCode {
    durafn_emulator::cli::main_entry()
}
