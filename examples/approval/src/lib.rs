//! Human in the loop: ask an approver through a callback, wait up to 24 h,
//! escalate once to a second approver, and act on the decision.
//!
//! Input: `{"request": "deploy", "approver": "ops"}`. The approver answers by
//! completing the callback whose id was sent to them:
//! `POST /v1/callbacks/{id}/succeed` with `{"approved": true, "by": "ops"}`.

use std::time::Duration;

use durafn::prelude::*;
use serde::{Deserialize, Serialize};

/// What needs approving, and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// What is asked for (e.g. `deploy`).
    pub request: String,
    /// Who is asked first.
    pub approver: String,
    /// Who is asked if the first approver does not answer in time.
    #[serde(default = "default_escalation")]
    pub escalate_to: String,
}

fn default_escalation() -> String {
    "duty-manager".into()
}

/// The approver's answer (the callback's result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Yes or no.
    pub approved: bool,
    /// Who decided.
    #[serde(default)]
    pub by: String,
    /// Why.
    #[serde(default)]
    pub note: Option<String>,
}

/// How the request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `approved`, `rejected` or `expired`.
    pub status: String,
    /// Who decided, if anyone.
    pub decided_by: Option<String>,
    /// Whether the request was escalated.
    pub escalated: bool,
}

/// How long each approver has.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(24 * 3600);

/// Sends the approval request (a stand-in for email or chat).
fn notify(who: &str, request: &str, callback_id: &str) {
    tracing::info!(%who, %request, %callback_id, "approval requested: POST /v1/callbacks/{callback_id}/succeed");
}

async fn ask(
    ctx: &DurableContext,
    name: &str,
    who: String,
    request: String,
) -> Result<Option<Decision>, DurableError> {
    let answer = ctx
        .wait_for_callback(name, move |callback_id: String| async move {
            notify(&who, &request, &callback_id);
            Ok::<_, DurableError>(())
        })
        .timeout(ANSWER_WITHIN)
        .await;
    match answer {
        Ok(d) => Ok(Some(d)),
        Err(DurableError::Timeout { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The durable workflow.
pub async fn workflow(ctx: DurableContext, req: ApprovalRequest) -> Result<Outcome, DurableError> {
    let mut escalated = false;
    let mut decision = ask(&ctx, "approval", req.approver.clone(), req.request.clone()).await?;
    if decision.is_none() {
        escalated = true;
        ctx.logger().warn(format!(
            "{} did not answer; escalating to {}",
            req.approver, req.escalate_to
        ));
        decision = ask(
            &ctx,
            "escalated-approval",
            req.escalate_to.clone(),
            req.request.clone(),
        )
        .await?;
    }
    let Some(d) = decision else {
        return Ok(Outcome {
            status: "expired".into(),
            decided_by: None,
            escalated,
        });
    };
    if !d.approved {
        return Ok(Outcome {
            status: "rejected".into(),
            decided_by: Some(d.by),
            escalated,
        });
    }
    let request = req.request.clone();
    ctx.step("execute", move |_| async move {
        tracing::info!(%request, "approved; carrying it out");
        Ok::<_, DurableError>(())
    })
    .await?;
    Ok(Outcome {
        status: "approved".into(),
        decided_by: Some(d.by),
        escalated,
    })
}
