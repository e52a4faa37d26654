//! Fault injection: with 20% of store calls failing transiently — half of them
//! after the write landed — every execution still completes, with the same
//! results as on a healthy store, and nothing is charged twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use durafn_runtime::store::{FaultyStore, RetryingStore, SqliteStore, Store};
use order_example::{Order, Receipt, payments, workflow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_complete_with_the_same_results_through_injected_faults() {
    let dir = tempfile_dir();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("faulty.db")).unwrap());
    let faulty = Arc::new(FaultyStore::new(sqlite, 0.2, 42));
    let rt = TestRuntime::with_store(Arc::new(RetryingStore::new(faulty.clone())));
    let healthy = TestRuntime::new();

    for i in 0..20 {
        let order = Order {
            order_id: format!("fault-{i}"),
            amount_cents: 1000 + i,
            fail_reserve_attempts: u32::try_from(i % 3).unwrap(),
        };
        let exec = rt.start(handler(workflow), &order).await.unwrap();
        assert_eq!(
            exec.run_until_settled().await.unwrap(),
            Status::Succeeded,
            "order {i}"
        );
        let receipt: Receipt = exec.result().await.unwrap();
        assert_eq!(
            payments::charges(&order.order_id),
            1,
            "order {i} charged once"
        );

        let mut twin = order.clone();
        twin.order_id = format!("healthy-{i}");
        let reference = healthy.start(handler(workflow), &twin).await.unwrap();
        reference.run_until_settled().await.unwrap();
        let expected: Receipt = reference.result().await.unwrap();
        assert_eq!(
            receipt.reservation_id.replace("fault", "healthy"),
            expected.reservation_id
        );
        let shape = |ops: Vec<durafn_runtime::model::Operation>| {
            ops.into_iter()
                .map(|o| (o.id, o.name, o.status, o.attempt))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shape(exec.operations().await.unwrap()),
            shape(reference.operations().await.unwrap()),
            "order {i}: same journal as on a healthy store"
        );
    }
    assert!(
        faulty.injected() > 50,
        "faults were injected: {}",
        faulty.injected()
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("durafn-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
