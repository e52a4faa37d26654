//! Local SQS queues for the template's `SQS` events.
//!
//! Each `SQS` event's queue (and the dead-letter queue its `RedrivePolicy`
//! names) is hosted in the store, reachable with the SQS JSON protocol on the
//! emulator's own port (`http://127.0.0.1:<port>/000000000000/<queue>`), so an
//! `aws-sdk-sqs` client pointed at the emulator works unchanged. One poller
//! per event plays Lambda's event-source mapping: batches of up to
//! `BatchSize` messages, hidden for the queue's `VisibilityTimeout` while the
//! function handles them, deleted unless reported in `batchItemFailures` (or
//! the invocation failed), moved to the dead-letter queue once received more
//! than `maxReceiveCount` times.
//!
//! Messages live in the store (one record each): a message acknowledged to
//! its sender survives a restart or a kill -9, and every replica sharing the
//! store polls the same queues (a receive is a conditional claim, so one
//! replica delivers a given message at a time). See `docs/queues.md`.

mod poller;
pub mod protocol;
mod queue;

use std::sync::Arc;

use axum::Router;

use crate::platform::{Platform, StartError};
use crate::template::EventKind;

/// Starts the template's queues and their pollers; returns their routes (the
/// SQS JSON protocol).
pub fn start(platform: &Platform) -> Result<Router, StartError> {
    let configs = queue::configs_of(&platform.template);
    if configs.is_empty() {
        return Ok(Router::new());
    }
    for f in &platform.template.functions {
        for e in &f.events {
            if let EventKind::HttpApi { method, path } = &e.kind {
                if path == "/" && (method == "POST" || method == "ANY") {
                    return Err(StartError::QueueRouteTaken {
                        event: e.name.clone(),
                        function: f.name.clone(),
                        line: e.line,
                        method: method.clone(),
                    });
                }
            }
        }
    }
    let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
    crate::metrics::register_queues(&names);
    let queues = Arc::new(queue::Queues::open(
        configs,
        platform.store.clone(),
        platform.clock.now().0,
    ));
    for f in &platform.template.functions {
        for e in &f.events {
            let EventKind::Sqs {
                queue, batch_size, ..
            } = &e.kind
            else {
                continue;
            };
            let Some(host) = platform.hosts.get(&f.name).cloned() else {
                tracing::warn!(function = %f.name, queue, "no handler for this function: its SQS event is not polled");
                continue;
            };
            let source = poller::EventSource {
                function: f.name.clone(),
                queue: queue.clone(),
                batch_size: usize::try_from(*batch_size).unwrap_or(10).max(1),
            };
            tokio::spawn(poller::run(
                source,
                queues.clone(),
                host,
                platform.clock.clone(),
                platform.shutdown.clone(),
            ));
        }
    }
    tracing::info!(queues = ?names, "serving the template's queues (SQS JSON protocol on POST /)");
    Ok(protocol::router(
        protocol::SqsState {
            queues,
            clock: platform.clock.clone(),
        },
        &platform.guard,
        &platform.limits,
    ))
}
