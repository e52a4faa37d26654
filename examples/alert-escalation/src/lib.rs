//! Alert escalation: page the on-call people in turn, waiting for an
//! acknowledgement event from each before moving to the next.
//!
//! Input: `{"alert": "db down", "oncall": ["ana", "bo", "cy"], "ack_within_secs": 300}`.
//! Whoever responds sends `POST /v1/executions/{id}/events/ack` with `{"by": "ana"}`.

use std::time::Duration;

use durafn::prelude::*;
use serde::{Deserialize, Serialize};

/// The alert and who to page, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// What happened.
    pub alert: String,
    /// Who to page, in escalation order.
    pub oncall: Vec<String>,
    /// How long each person has to acknowledge.
    #[serde(default = "default_ack_within")]
    pub ack_within_secs: u64,
}

fn default_ack_within() -> u64 {
    300
}

/// The acknowledgement event's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Who acknowledged.
    pub by: String,
}

/// How the alert ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// Who acknowledged, if anyone.
    pub acknowledged_by: Option<String>,
    /// Everyone who was paged, in order.
    pub paged: Vec<String>,
}

/// The durable workflow.
pub async fn workflow(ctx: DurableContext, alert: Alert) -> Result<Resolution, DurableError> {
    if alert.oncall.is_empty() {
        return Err(DurableError::terminal(DurableError::new(
            "NoOneOnCall",
            "the alert names no one to page: give at least one name in \"oncall\"",
        )));
    }
    let mut paged = Vec::new();
    for (level, person) in alert.oncall.iter().enumerate() {
        let (who, what) = (person.clone(), alert.alert.clone());
        ctx.step(&format!("page-{level}"), move |_| async move {
            tracing::info!(%who, alert = %what, "paging");
            Ok::<_, DurableError>(())
        })
        .await?;
        paged.push(person.clone());
        let ack: Result<Ack, _> = ctx
            .wait_for_event("ack")
            .timeout(Duration::from_secs(alert.ack_within_secs))
            .await;
        match ack {
            Ok(a) => {
                return Ok(Resolution {
                    acknowledged_by: Some(a.by),
                    paged,
                });
            }
            Err(DurableError::Timeout { .. }) => {
                ctx.logger()
                    .warn(format!("{person} did not acknowledge; escalating"));
            }
            Err(e) => return Err(e),
        }
    }
    let everyone = alert.oncall.clone();
    ctx.step("page-everyone", move |_| async move {
        tracing::error!(?everyone, "nobody acknowledged; paging everyone");
        Ok::<_, DurableError>(())
    })
    .await?;
    Ok(Resolution {
        acknowledged_by: None,
        paged,
    })
}
