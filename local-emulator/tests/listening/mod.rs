#![allow(clippy::expect_used)] // test support: a panic is a failure

//! Starting `durafn dev` on port 0: it picks a free port and prints the one
//! it bound (`durafn dev: http://127.0.0.1:PORT …`), which is read back here.
//! No port is picked in advance, so nothing can take it in between.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawns `cmd` (a `durafn dev --port 0 …`) and returns it with its port.
/// Its stderr is read to the end on a thread (echoed to the test's stderr,
/// shown when the test fails), so it never blocks on a full pipe.
pub(crate) fn spawn(cmd: &mut Command) -> (Child, u16) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn durafn dev");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait();
            panic!("durafn dev exited before it listened: {status:?}");
        };
        eprintln!("{line}");
        if let Some(rest) = line.strip_prefix("durafn dev: http://127.0.0.1:") {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse::<u16>().expect("a port in the listening line");
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    (child, port)
}
