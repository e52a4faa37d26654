//! The self-hosting compose file (`deploy/compose.yaml`) parses, and says
//! what `docs/self-hosting-scylla.md` promises: ScyllaDB with Alternator
//! and LWT write isolation, three `durafn server` replicas on one table,
//! each with its own replica id, a token file and the handler binaries.
//! The systemd unit runs `durafn server` the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::PathBuf;

use saphyr::{LoadableYamlNode, YamlOwned};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn strings(node: &YamlOwned) -> Vec<String> {
    node.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_file_runs_scylla_and_three_replicas_on_one_table() {
    let text = std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap();
    let docs = YamlOwned::load_from_str(&text).expect("deploy/compose.yaml is valid YAML");
    assert_eq!(docs.len(), 1);
    let services = docs[0].as_mapping_get("services").expect("services");

    let scylla = services.as_mapping_get("scylla").expect("a scylla service");
    let image = scylla
        .as_mapping_get("image")
        .and_then(YamlOwned::as_str)
        .unwrap();
    assert!(image.starts_with("scylladb/scylla"), "{image}");
    let flags = strings(scylla.as_mapping_get("command").unwrap());
    assert!(
        flags.contains(&"--alternator-port=8000".to_string()),
        "{flags:?}"
    );
    assert!(
        flags.contains(&"--alternator-write-isolation=always_use_lwt".to_string()),
        "Durafn's conditional writes need LWT isolation: {flags:?}"
    );
    assert!(scylla.as_mapping_get("healthcheck").is_some());

    let mut stores = Vec::new();
    let mut ids = Vec::new();
    for n in 1..=3 {
        let name = format!("durafn-{n}");
        let r = services
            .as_mapping_get(&name)
            .unwrap_or_else(|| panic!("no service {name}"));
        let cmd = strings(r.as_mapping_get("command").unwrap());
        assert_eq!(cmd.first().map(String::as_str), Some("server"), "{cmd:?}");
        let arg = |flag: &str| {
            let i = cmd
                .iter()
                .position(|c| c == flag)
                .unwrap_or_else(|| panic!("{name}: no {flag}"));
            cmd[i + 1].clone()
        };
        let store = arg("--store");
        assert!(
            store.starts_with("dynamodb://") && store.contains("endpoint=http://scylla:8000"),
            "{store}"
        );
        stores.push(store);
        assert!(arg("--token-file").starts_with("/run/secrets/"));
        assert!(arg("--bind").ends_with(":9000"));
        let exes: Vec<&String> = cmd
            .iter()
            .filter(|c| c.contains("=/opt/durafn/bin/"))
            .collect();
        assert_eq!(
            exes.len(),
            5,
            "{name}: every example function's handler: {cmd:?}"
        );
        let env = r.as_mapping_get("environment").unwrap();
        let id = env
            .as_mapping_get("DURAFN_REPLICA_ID")
            .and_then(YamlOwned::as_str)
            .unwrap()
            .to_string();
        ids.push(id);
        let ttl = env
            .as_mapping_get("DURAFN_SHARD_LEASE_TTL_MS")
            .and_then(YamlOwned::as_str)
            .unwrap();
        assert!(ttl.parse::<u64>().unwrap() <= 10_000, "lease TTL {ttl}");
        let depends = r.as_mapping_get("depends_on").unwrap();
        assert!(depends.as_mapping_get("scylla").is_some());
    }
    stores.dedup();
    assert_eq!(stores.len(), 1, "all replicas share one table");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each replica has its own id");
    let secrets = docs[0].as_mapping_get("secrets").unwrap();
    assert!(secrets.as_mapping_get("durafn_token").is_some());
}

#[test]
fn the_systemd_unit_runs_durafn_server_with_a_token_file() {
    let unit = std::fs::read_to_string(repo().join("deploy/durafn.service")).unwrap();
    for needle in [
        "[Service]",
        "ExecStart=/opt/durafn/bin/durafn server",
        "--token-file /etc/durafn/token",
        "EnvironmentFile=/etc/durafn/durafn.env",
        "Restart=always",
        "[Install]",
    ] {
        assert!(
            unit.contains(needle),
            "deploy/durafn.service lacks {needle:?}"
        );
    }
}
