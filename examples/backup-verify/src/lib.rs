//! The backup-verify workflow: every night (a `ScheduleV2` event,
//! `cron(0 3 * * ? *)` in `Europe/Paris`) check that last night's backup can
//! really be restored.
//!
//! Steps, each retried with exponential backoff: `snapshot-exists` →
//! `restore-to-scratch` → `checksum` → `cleanup`. If any of them fails for
//! good, a `send-alert` step tells the on-call person (once, however often
//! the workflow is replayed), the scratch copy is still cleaned up, and the
//! execution ends `FAILED`.
//!
//! The storage and alerting services are in-memory stand-ins that count
//! their calls, so tests can prove each side effect happens once. The input
//! is what a schedule fire gives: `{"schedule", "scheduled_time"}`; the
//! `simulate` knobs make a run fail on purpose.

use std::collections::HashMap;
use std::sync::Mutex;

use durafn::prelude::*;
use serde::{Deserialize, Serialize};

/// What a schedule fire passes in (plus demo knobs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The schedule that fired.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The fire time, RFC 3339 (UTC).
    #[serde(default)]
    pub scheduled_time: Option<String>,
    /// Which backup to check (default: the one of the fire's day).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Make the run fail on purpose.
    #[serde(default)]
    pub simulate: Simulate,
}

/// Failures to simulate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Simulate {
    /// The snapshot does not exist.
    #[serde(default)]
    pub missing_snapshot: bool,
    /// How many restore attempts time out before one works.
    #[serde(default)]
    pub restore_failures: u32,
    /// The restored data does not match the snapshot's checksum.
    #[serde(default)]
    pub corrupt: bool,
}

impl Run {
    /// The snapshot to verify: `snap-<yyyy-mm-dd>` of the fire's day.
    pub fn snapshot_id(&self) -> String {
        if let Some(s) = &self.snapshot {
            return s.clone();
        }
        let day = self
            .scheduled_time
            .as_deref()
            .and_then(|t| t.get(..10))
            .unwrap_or("manual");
        format!("snap-{day}")
    }
}

/// What a verified backup reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The snapshot verified.
    pub snapshot: String,
    /// Its size.
    pub bytes: u64,
    /// The checksum both sides agreed on.
    pub checksum: String,
    /// The scratch copy that was restored, then deleted.
    pub scratch: String,
}

/// Errors of the stand-in services.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// No such snapshot: retrying will not make it appear.
    #[error("snapshot {0} does not exist")]
    Missing(String),
    /// The restore did not finish in time.
    #[error("restore of {0} timed out (attempt {1})")]
    RestoreTimeout(String, u32),
    /// The restored data differs from the snapshot.
    #[error("checksum mismatch for {snapshot}: expected {expected}, restored data has {actual}")]
    Mismatch {
        /// The snapshot.
        snapshot: String,
        /// Its recorded checksum.
        expected: String,
        /// The restored copy's checksum.
        actual: String,
    },
}

/// Facts about a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its id.
    pub id: String,
    /// Its size.
    pub bytes: u64,
    /// Its recorded checksum.
    pub checksum: String,
}

fn policy() -> RetryPolicy {
    RetryPolicy::exponential()
        .max_attempts(4)
        .initial_delay(Duration::from_secs(30))
}

/// The durable workflow.
pub async fn workflow(ctx: DurableContext, run: Run) -> Result<Report, DurableError> {
    let snapshot_id = run.snapshot_id();
    let sim = run.simulate.clone();

    let snap = ctx
        .step("snapshot-exists", |_| {
            let (id, sim) = (snapshot_id.clone(), sim.clone());
            async move { storage::find(&id, &sim).map_err(DurableError::terminal) }
        })
        .retry(policy())
        .await;
    let snap: Snapshot = match snap {
        Ok(s) => s,
        Err(e) => return alert_and_fail(&ctx, &snapshot_id, e, None).await,
    };

    let scratch = ctx
        .step("restore-to-scratch", |s| {
            let (snap, sim) = (snap.clone(), sim.clone());
            async move { storage::restore(&snap, &sim, s.attempt()) }
        })
        .retry(policy())
        .await;
    let scratch: String = match scratch {
        Ok(s) => s,
        Err(e) => return alert_and_fail(&ctx, &snapshot_id, e, None).await,
    };

    let checked = ctx
        .step("checksum", |_| {
            let (snap, scratch, sim) = (snap.clone(), scratch.clone(), sim.clone());
            async move { storage::verify(&snap, &scratch, &sim).map_err(DurableError::terminal) }
        })
        .retry(policy())
        .await;
    let checksum: String = match checked {
        Ok(c) => c,
        Err(e) => return alert_and_fail(&ctx, &snapshot_id, e, Some(&scratch)).await,
    };

    cleanup(&ctx, &scratch).await?;
    Ok(Report {
        snapshot: snap.id,
        bytes: snap.bytes,
        checksum,
        scratch,
    })
}

async fn cleanup(ctx: &DurableContext, scratch: &str) -> Result<(), DurableError> {
    let _done: String = ctx
        .step("cleanup", |_| {
            let scratch = scratch.to_string();
            async move { Ok::<_, DurableError>(storage::delete_scratch(&scratch)) }
        })
        .retry(policy())
        .await?;
    Ok(())
}

/// Cleans up what was restored, alerts, and ends the run failed.
async fn alert_and_fail(
    ctx: &DurableContext,
    snapshot: &str,
    error: DurableError,
    scratch: Option<&str>,
) -> Result<Report, DurableError> {
    if let Some(scratch) = scratch {
        cleanup(ctx, scratch).await?;
    }
    let message = format!(
        "backup verification of {snapshot} failed: {}",
        error.to_error_object().message
    );
    let _alert: String = ctx
        .step("send-alert", |_| {
            let (snapshot, message) = (snapshot.to_string(), message.clone());
            async move { Ok::<_, DurableError>(alerts::send(&snapshot, &message)) }
        })
        .retry(policy())
        .await?;
    Err(DurableError::terminal(error))
}

fn bump(calls: &Mutex<HashMap<String, u32>>, key: &str) -> u32 {
    let mut calls = calls.lock().unwrap_or_else(|p| p.into_inner());
    let n = calls.entry(key.to_string()).or_insert(0);
    *n += 1;
    *n
}

fn count(calls: &Mutex<HashMap<String, u32>>, key: &str) -> u32 {
    let calls = calls.lock().unwrap_or_else(|p| p.into_inner());
    calls.get(key).copied().unwrap_or(0)
}

/// The stand-in backup storage.
pub mod storage {
    use super::*;

    static RESTORES: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);
    static DELETES: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    fn checksum_of(id: &str) -> String {
        let sum = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{sum:016x}")
    }

    /// Looks a snapshot up.
    pub fn find(id: &str, sim: &Simulate) -> Result<Snapshot, BackupError> {
        if sim.missing_snapshot {
            return Err(BackupError::Missing(id.to_string()));
        }
        Ok(Snapshot {
            id: id.to_string(),
            bytes: 1 << 30,
            checksum: checksum_of(id),
        })
    }

    /// Restores a snapshot into a scratch volume; times out
    /// `sim.restore_failures` times first.
    pub fn restore(snap: &Snapshot, sim: &Simulate, attempt: u32) -> Result<String, BackupError> {
        let n = bump(&RESTORES, &snap.id);
        if attempt <= sim.restore_failures {
            return Err(BackupError::RestoreTimeout(snap.id.clone(), attempt));
        }
        tracing::info!(snapshot = %snap.id, calls = n, "restored to scratch");
        Ok(format!("scratch-{}", snap.id))
    }

    /// Compares the restored copy's checksum with the snapshot's.
    pub fn verify(snap: &Snapshot, scratch: &str, sim: &Simulate) -> Result<String, BackupError> {
        let actual = if sim.corrupt {
            checksum_of(&format!("{scratch}-corrupt"))
        } else {
            checksum_of(&snap.id)
        };
        if actual != snap.checksum {
            return Err(BackupError::Mismatch {
                snapshot: snap.id.clone(),
                expected: snap.checksum.clone(),
                actual,
            });
        }
        Ok(actual)
    }

    /// Deletes a scratch volume.
    pub fn delete_scratch(scratch: &str) -> String {
        bump(&DELETES, scratch);
        format!("deleted {scratch}")
    }

    /// How many restore calls a snapshot got.
    pub fn restores(snapshot: &str) -> u32 {
        count(&RESTORES, snapshot)
    }

    /// How many times a scratch volume was deleted.
    pub fn deletes(scratch: &str) -> u32 {
        count(&DELETES, scratch)
    }
}

/// The stand-in alerting service.
pub mod alerts {
    use super::*;

    static SENT: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Pages the on-call person about a snapshot.
    pub fn send(snapshot: &str, message: &str) -> String {
        let n = bump(&SENT, snapshot);
        tracing::warn!(snapshot, message, "alert sent");
        format!("alert-{snapshot}-{n}")
    }

    /// How many alerts a snapshot caused.
    pub fn sent(snapshot: &str) -> u32 {
        count(&SENT, snapshot)
    }
}
