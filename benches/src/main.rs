//! Durafn's benchmarks: each figure is measured beside its floor, in the same
//! run, and reported as a ratio to it (see `docs/benchmarks.md`).
//!
//! ```text
//! cargo run --release -p durafn-bench [-- --json] [-- --quick] [-- --only GROUP[,GROUP...]]
//! ```
//!
//! Every figure is one line, `bench <metric> value=<v> unit=<u> target=<t>`
//! (or a JSON object with `--json`); the raw numbers behind it are `info`
//! lines. A figure that could not be measured is an `error <metric> <message>`
//! line, and the process exits non-zero once every other figure is printed.

mod bins;
mod ddb_local;
mod dev_server;
mod floor;
mod measure;
mod metrics;
mod report;
mod timed_store;
mod workflows;

use std::process::ExitCode;

use metrics::MetricGroup;
use report::{Format, Report};

/// How much work each measurement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// The sizes the figures are quoted at.
    Full,
    /// Tiny sizes: a smoke run that checks the benchmarks work, not their figures.
    Quick,
}

/// What the command line asked for.
#[derive(Debug)]
struct Args {
    format: Format,
    scale: Scale,
    /// The groups to run; empty for all.
    only: Vec<MetricGroup>,
}

const USAGE: &str = "\
usage: durafn-bench [--json] [--quick] [--only GROUP[,GROUP...]]

  --json        print each figure as a JSON line on stdout (info and error lines go to stderr)
  --quick       small sizes: checks that every benchmark runs; its figures mean nothing
  --only GROUP  run only these groups (comma-separated; repeatable):
                step_cost, replay, group_commit, emulator, resume, timers, idle_rss, ddb

The ddb group uses the DynamoDB Local at $DURAFN_DYNAMODB_ENDPOINT, or starts
one with scripts/dynamodb-local.sh (Java 17 and npm) and stops it afterwards.";

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Args {
            format: Format::Text,
            scale: Scale::Full,
            only: Vec::new(),
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => parsed.format = Format::Json,
                "--quick" => parsed.scale = Scale::Quick,
                "--only" => {
                    let names = args
                        .next()
                        .ok_or_else(|| "--only needs a group name".to_string())?;
                    for name in names.split(',').filter(|n| !n.is_empty()) {
                        parsed.only.push(MetricGroup::named(name).ok_or_else(|| {
                            format!(
                                "unknown group {name:?}; the groups are: {}",
                                MetricGroup::ALL.map(MetricGroup::name).join(", ")
                            )
                        })?);
                    }
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("durafn-bench: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("durafn-bench: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report::new(args.format);
    report.info(
        "setup",
        &[
            ("quick", f64::from(u8::from(args.scale == Scale::Quick))),
            ("cpus", measure::cpus() as f64),
        ],
    );
    report.note(
        "setup",
        &format!("scratch_dir={}", std::env::temp_dir().display()),
    );
    for group in MetricGroup::ALL {
        if !args.only.is_empty() && !args.only.contains(&group) {
            continue;
        }
        runtime.block_on(group.run(args.scale, &mut report));
        report.require(group.metrics());
    }
    if report.failures() > 0 {
        eprintln!(
            "durafn-bench: {} figure(s) could not be measured",
            report.failures()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
