//! Pausing an execution under the test runtime: the running invocation
//! finishes its current step and suspends; nothing runs until unpaused.

use std::time::Duration;

use durafn::prelude::*;
use durafn::testing::TestRuntime;
use serde_json::json;

mod common;
use common::Calls;

#[tokio::test]
async fn a_paused_execution_suspends_after_its_current_step_and_resumes_on_unpause() {
    let rt = TestRuntime::new().cancel_check_interval(Duration::ZERO);
    let (first, second) = (Calls::default(), Calls::default());
    let (f, s, store) = (first.clone(), second.clone(), rt.store());
    let h = handler(move |ctx: DurableContext, _: ()| {
        let (f, s, store) = (f.clone(), s.clone(), store.clone());
        async move {
            let id = ctx.execution_id().clone();
            ctx.step("first", move |_| async move {
                // An operator pauses the execution while this step runs.
                store
                    .set_paused(&id, true, Timestamp(0))
                    .await
                    .map_err(|e| DurableError::msg(e.to_string()))?;
                Ok::<_, DurableError>(f.hit())
            })
            .await?;
            let n = ctx
                .step(
                    "second",
                    move |_| async move { Ok::<_, DurableError>(s.hit()) },
                )
                .await?;
            Ok(n)
        }
    });
    let exec = rt.start(h, ()).await.unwrap();
    let report = exec.run_once().await.unwrap().unwrap();
    assert_eq!(report.status, "SUSPENDED");
    assert_eq!(
        (first.get(), second.get()),
        (1, 0),
        "the current step finished, the next did not start"
    );
    assert_eq!(exec.status().await.unwrap(), Status::Suspended);
    let store = rt.store();
    let e = store.get_execution(exec.id()).await.unwrap().unwrap();
    assert!(e.paused);
    assert!(
        exec.run_once().await.unwrap().is_none(),
        "not dispatched while paused"
    );
    // A signal while paused is recorded; the unpause lets it run and catch up.
    exec.send_event("nudge", json!(1)).await.unwrap();
    assert!(exec.run_once().await.unwrap().is_none());
    store.set_paused(exec.id(), false, rt.now()).await.unwrap();
    assert_eq!(exec.run_until_settled().await.unwrap(), Status::Succeeded);
    assert_eq!((first.get(), second.get()), (1, 1));
}
