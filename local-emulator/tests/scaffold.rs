//! `durafn new`: the real binary generates a project against this repo's
//! `sdk/`, whose own test passes offline (`cargo test --offline`, built in this
//! workspace's target dir with this workspace's Cargo.lock, so no dependency
//! is built twice), whose template the emulator reads, and which runs under
//! `durafn dev` — started through the REST API and through its HttpApi route.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod listening;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use durafn_emulator::client::ApiClient;
use serde_json::json;

/// Unique within this workspace's target dir (its binary lands there).
const NAME: &str = "durafn-scaffold-smoke";

fn durafn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_durafn"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// This workspace's target dir: the test runs as `<target>/<profile>/deps/scaffold-…`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_names_and_non_empty_folders_are_refused() {
    let out = durafn(&["new", "2fast"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a valid project name"),
        "{}",
        stderr(&out)
    );

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = durafn(&["new", "hello", "--dir", dir]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_builds_passes_its_test_and_runs_under_durafn_dev() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join(NAME);
    let out = Command::new(env!("CARGO_BIN_EXE_durafn"))
        .args(["new", NAME, "--dir"])
        .arg(&project)
        .arg("--sdk-path")
        .arg(repo.join("sdk"))
        .output()
        .unwrap();
    assert!(out.status.success(), "durafn new failed: {}", stderr(&out));

    // The emulator reads the generated template as it is.
    let template = durafn_emulator::template::load(&project.join("template.yaml"))
        .unwrap_or_else(|e| panic!("the generated template.yaml: {e}"));
    let f = template
        .function(NAME)
        .expect("the function is in the template");
    assert_eq!(f.binary, NAME);
    assert!(project.join(&f.code_uri).join("Cargo.toml").exists());

    // Its test passes, offline, against this repo's SDK.
    std::fs::copy(repo.join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let target = target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let out = Command::new(cargo)
        .args(["test", "--offline", "--workspace"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the generated project's `cargo test` failed:\n{stdout}\n{}",
        stderr(&out)
    );
    assert!(
        stdout.contains("greets_pauses_and_follows_up ... ok"),
        "{stdout}"
    );
    eprintln!(
        "generated project built and tested in {:.1?}",
        started.elapsed()
    );

    // It runs under `durafn dev` (its binary, built by that test run).
    let exe = target.join("debug").join(NAME);
    assert!(exe.exists(), "{} was not built", exe.display());
    let (child, port) = listening::spawn(
        Command::new(env!("CARGO_BIN_EXE_durafn"))
            .args(["dev", "--port", "0"])
            .arg("--state")
            .arg(tmp.path().join(".durafn"))
            .arg("--template")
            .arg(project.join("template.yaml"))
            .arg("--exe")
            .arg(format!("{NAME}={}", exe.display()))
            .env("RUST_LOG", "warn"),
    );
    let _dev = Dev(child);
    let client = ApiClient::new(&format!("http://127.0.0.1:{port}"), None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(client.call("GET", "/healthz", None).await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "durafn dev did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body = json!({ "input": { "name": "Ada" }, "wait": 30 });
    let (status, v) = client
        .call(
            "POST",
            &format!("/v1/functions/{NAME}/executions"),
            Some(&body),
        )
        .await
        .unwrap();
    assert!(status < 300, "{status}: {v}");
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"]["greeting"], "Hello, Ada!", "{v}");

    // The template's HttpApi route starts one too.
    let (status, v) = client
        .call(
            "POST",
            &format!("/{NAME}"),
            Some(&json!({ "name": "Grace" })),
        )
        .await
        .unwrap();
    assert!(status < 300, "POST /{NAME}: {status}: {v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = client
            .call("GET", &format!("/v1/executions?function={NAME}"), None)
            .await
            .unwrap();
        let done = list["executions"]
            .as_array()
            .map(|xs| xs.iter().filter(|x| x["status"] == "SUCCEEDED").count())
            .unwrap_or(0);
        if done == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the route's execution did not succeed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
