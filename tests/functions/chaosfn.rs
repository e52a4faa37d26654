//! The chaos suite's handler binary: the parent workflow, or the child it
//! invokes when run as `chaos-child` (the function name the emulator gives it).
//!
//! If `CHAOS_PIDS` is set, the process appends its pid there first, so the
//! test can reap processes orphaned by a killed emulator.

use std::io::Write;

fn note_pid() {
    if let Some(path) = std::env::var_os("CHAOS_PIDS") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{}\n", std::process::id()).as_bytes());
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), durafn::Error> {
    note_pid();
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    if function == durafn_tests::chaos::CHILD_FUNCTION {
        durafn::run(durafn::handler(durafn_tests::chaos::child)).await
    } else {
        durafn::run(durafn::handler(durafn_tests::chaos::parent_or_batch)).await
    }
}
