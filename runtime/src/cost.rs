//! What an execution costs: the store calls its invocations make, counted
//! where the store layer sends them, and the AWS price table that turns them
//! (with the invocations' Lambda requests and duration) into dollars.
//!
//! Counting works by scope: whoever acts for one execution (the SDK for an
//! invocation, the dispatcher for its claim, the store-over-HTTP server for
//! one remote call) runs the store calls inside [`metered`] with a
//! [`UsageMeter`]; the backends add each request they send to the meter in
//! scope ([`record_read`], [`record_write`]); outside a scope nothing is
//! counted and counting costs nothing. The SDK writes the meter's totals into
//! the invocation's end record (`InvocationRecord::usage`), so counting adds
//! no store write; the REST API sums the records of an execution
//! ([`ExecutionCost`]). See `docs/cost.md`.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The prices the estimate uses: AWS us-east-1, on-demand, as published
/// (DynamoDB's on-demand prices since the 2024-11-01 reduction; Lambda's
/// arm64 prices). `docs/cost.md` holds the same table.
pub mod prices {
    /// Where and when these prices were read.
    pub const AS_OF: &str = "AWS us-east-1 on-demand prices as published on 2024-11-01 (DynamoDB on-demand after the November 2024 reduction; Lambda arm64)";
    /// The AWS region of the prices.
    pub const REGION: &str = "us-east-1";
    /// Dollars per million DynamoDB write request units (1 WRU: one write of up to 1 KB).
    pub const DYNAMODB_WRU_PER_MILLION: f64 = 0.625;
    /// Dollars per million DynamoDB read request units (1 RRU: one strongly
    /// consistent read of up to 4 KB).
    pub const DYNAMODB_RRU_PER_MILLION: f64 = 0.125;
    /// Dollars per million Lambda requests.
    pub const LAMBDA_REQUESTS_PER_MILLION: f64 = 0.20;
    /// Dollars per GB-second of Lambda duration (arm64, first pricing tier).
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// The memory assumed for an invocation that did not report its own
    /// (SAM's default `MemorySize`).
    pub const DEFAULT_MEMORY_MB: u32 = 128;
    /// The bytes one write request unit covers.
    pub const WRITE_UNIT_BYTES: u64 = 1024;
    /// The bytes one (strongly consistent) read request unit covers.
    pub const READ_UNIT_BYTES: u64 = 4096;
}

/// Store calls and their bytes, as counted for one invocation (or summed for
/// an execution).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreUsage {
    /// Read requests sent (a query or a batch read is one).
    pub reads: u64,
    /// Write requests sent.
    pub writes: u64,
    /// Bytes the read requests brought back.
    pub read_bytes: u64,
    /// Bytes the write requests carried.
    pub write_bytes: u64,
    /// Read request units: what DynamoDB reported when it did, else one per
    /// started 4 KB of each read's bytes.
    pub read_units: u64,
    /// Write request units: what DynamoDB reported when it did, else one per
    /// started 1 KB of each write's bytes.
    pub write_units: u64,
}

impl StoreUsage {
    /// Adds `other` to this one.
    pub fn add(&mut self, other: &StoreUsage) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.read_bytes += other.read_bytes;
        self.write_bytes += other.write_bytes;
        self.read_units += other.read_units;
        self.write_units += other.write_units;
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == StoreUsage::default()
    }
}

/// The read units of one read of `bytes`: one per started 4 KB, at least 1.
pub fn read_units(bytes: u64) -> u64 {
    bytes.div_ceil(prices::READ_UNIT_BYTES).max(1)
}

/// The write units of one write of `bytes`: one per started 1 KB, at least 1.
pub fn write_units(bytes: u64) -> u64 {
    bytes.div_ceil(prices::WRITE_UNIT_BYTES).max(1)
}

/// A running count of store usage, shared by the calls of one scope.
#[derive(Debug, Default)]
pub struct UsageMeter(Mutex<StoreUsage>);

impl UsageMeter {
    /// A meter at zero.
    pub fn new() -> Arc<UsageMeter> {
        Arc::new(UsageMeter::default())
    }

    /// What it has counted so far.
    pub fn snapshot(&self) -> StoreUsage {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds usage counted elsewhere (a remote store's answer, a claim the
    /// dispatcher made).
    pub fn add(&self, usage: &StoreUsage) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(usage);
    }
}

tokio::task_local! {
    static METER: Arc<UsageMeter>;
}

/// Runs `fut` with `meter` counting the store calls it makes (on this task;
/// work a backend hands to other tasks is counted by the caller, before it
/// hands it over).
pub async fn metered<F: std::future::Future>(meter: Arc<UsageMeter>, fut: F) -> F::Output {
    METER.scope(meter, fut).await
}

/// The meter in scope, if any.
pub fn current() -> Option<Arc<UsageMeter>> {
    METER.try_with(Arc::clone).ok()
}

/// True when a meter is in scope (so a backend need not size what it would
/// not count).
pub fn counting() -> bool {
    METER.try_with(|_| ()).is_ok()
}

/// Counts one read request that brought back `bytes`, with `units` if the
/// backend reported them (else computed from the bytes).
pub fn record_read(bytes: u64, units: Option<u64>) {
    let _ = METER.try_with(|m| {
        m.add(&StoreUsage {
            reads: 1,
            read_bytes: bytes,
            read_units: units.unwrap_or_else(|| read_units(bytes)),
            ..StoreUsage::default()
        })
    });
}

/// Counts one write request that carried `bytes`, with `units` if the
/// backend reported them (else computed from the bytes).
pub fn record_write(bytes: u64, units: Option<u64>) {
    let _ = METER.try_with(|m| {
        m.add(&StoreUsage {
            writes: 1,
            write_bytes: bytes,
            write_units: units.unwrap_or_else(|| write_units(bytes)),
            ..StoreUsage::default()
        })
    });
}

/// Adds usage counted elsewhere to the meter in scope.
pub fn record(usage: &StoreUsage) {
    let _ = METER.try_with(|m| m.add(usage));
}

/// The estimated price of some usage, in US dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// DynamoDB write request units.
    pub dynamodb_writes_usd: f64,
    /// DynamoDB read request units.
    pub dynamodb_reads_usd: f64,
    /// Lambda requests.
    pub lambda_requests_usd: f64,
    /// Lambda duration (GB-s).
    pub lambda_duration_usd: f64,
    /// The sum.
    pub total_usd: f64,
}

/// What an execution cost, summed over its recorded invocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionCost {
    /// Store usage.
    pub store: StoreUsage,
    /// Invocations counted (Lambda requests).
    pub invocations: u64,
    /// Invocations whose usage is unknown (no end record: crashed, timed
    /// out, still running, or older than the kept history).
    pub invocations_uncounted: u64,
    /// Lambda duration in GB-seconds (each invocation's duration, rounded up
    /// to the millisecond, times its memory).
    pub gb_seconds: f64,
    /// The price of it all.
    pub estimate: CostEstimate,
}

impl ExecutionCost {
    /// Adds one invocation: its store usage, its duration and its memory.
    pub fn add_invocation(&mut self, usage: &StoreUsage, millis: u64, memory_mb: u32) {
        self.store.add(usage);
        self.invocations += 1;
        self.gb_seconds += millis as f64 / 1000.0 * f64::from(memory_mb) / 1024.0;
        self.estimate = estimate(&self.store, self.invocations, self.gb_seconds);
    }
}

/// What an execution cost, from its history records: the sum of every
/// invocation's end record. Invocations without one (crashed, timed out,
/// running, or dropped from the kept history) are counted as uncounted.
pub fn of_history(entries: &[crate::model::HistoryEntry]) -> ExecutionCost {
    let mut cost = ExecutionCost::default();
    let mut first_epoch = None::<u64>;
    for e in entries {
        let crate::model::HistoryEntry::Invocation(inv) = e else {
            continue;
        };
        first_epoch = Some(first_epoch.map_or(inv.epoch, |f| f.min(inv.epoch)));
        match (&inv.usage, inv.ended_at) {
            (Some(usage), Some(end)) => {
                let millis = u64::try_from(end.0.saturating_sub(inv.started_at.0)).unwrap_or(0);
                let memory = inv.memory_mb.unwrap_or(prices::DEFAULT_MEMORY_MB);
                cost.add_invocation(usage, millis.max(1), memory);
            }
            _ => cost.invocations_uncounted += 1,
        }
    }
    cost.invocations_uncounted += first_epoch.map_or(0, |f| f.saturating_sub(1));
    cost
}

/// The price of `usage` plus `invocations` Lambda requests of `gb_seconds` in all.
pub fn estimate(usage: &StoreUsage, invocations: u64, gb_seconds: f64) -> CostEstimate {
    let per_million = |n: u64, price: f64| n as f64 * price / 1_000_000.0;
    let mut e = CostEstimate {
        dynamodb_writes_usd: per_million(usage.write_units, prices::DYNAMODB_WRU_PER_MILLION),
        dynamodb_reads_usd: per_million(usage.read_units, prices::DYNAMODB_RRU_PER_MILLION),
        lambda_requests_usd: per_million(invocations, prices::LAMBDA_REQUESTS_PER_MILLION),
        lambda_duration_usd: gb_seconds * prices::LAMBDA_GB_SECOND,
        total_usd: 0.0,
    };
    e.total_usd = e.dynamodb_writes_usd
        + e.dynamodb_reads_usd
        + e.lambda_requests_usd
        + e.lambda_duration_usd;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_up_per_request() {
        assert_eq!(
            (read_units(0), read_units(4096), read_units(4097)),
            (1, 1, 2)
        );
        assert_eq!(
            (write_units(1), write_units(1024), write_units(1025)),
            (1, 1, 2)
        );
    }

    #[tokio::test]
    async fn only_calls_inside_a_scope_are_counted() {
        record_write(10, None);
        let meter = UsageMeter::new();
        metered(meter.clone(), async {
            assert!(counting());
            record_write(2000, None);
            record_read(100, Some(3));
            record(&StoreUsage {
                writes: 1,
                write_bytes: 5,
                write_units: 1,
                ..StoreUsage::default()
            });
        })
        .await;
        assert!(!counting());
        let u = meter.snapshot();
        assert_eq!((u.reads, u.read_bytes, u.read_units), (1, 100, 3));
        assert_eq!((u.writes, u.write_bytes, u.write_units), (2, 2005, 3));
    }

    #[test]
    fn the_estimate_follows_the_price_table() {
        let mut c = ExecutionCost::default();
        let usage = StoreUsage {
            writes: 12,
            write_units: 1_000_000,
            reads: 2,
            read_units: 1_000_000,
            ..StoreUsage::default()
        };
        c.add_invocation(&usage, 1000, 1024);
        assert_eq!(c.invocations, 1);
        assert!((c.gb_seconds - 1.0).abs() < 1e-9);
        let e = c.estimate;
        assert!((e.dynamodb_writes_usd - 0.625).abs() < 1e-9);
        assert!((e.dynamodb_reads_usd - 0.125).abs() < 1e-9);
        assert!((e.lambda_requests_usd - 0.000_000_2).abs() < 1e-12);
        assert!((e.total_usd - (0.75 + 0.000_000_2 + 0.000_013_333_4)).abs() < 1e-9);
    }
}
