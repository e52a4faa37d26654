//! The order workflow: charge the card, wait out a 10 s cool-off, reserve the
//! stock (retried with backoff), email the receipt.
//!
//! The payment, inventory and email services are in-memory stand-ins that
//! count their calls, so tests can prove nothing is charged twice.

use std::collections::HashMap;
use std::sync::Mutex;

use durafn::prelude::*;
use serde::{Deserialize, Serialize};

/// An order to fulfil: `{"order_id": "o-1", "amount_cents": 1999}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub order_id: String,
    /// The amount to charge.
    pub amount_cents: u64,
    /// Demo knob: how many reservation attempts fail before one succeeds.
    #[serde(default)]
    pub fail_reserve_attempts: u32,
}

/// What a fulfilled order returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The order's id.
    pub order_id: String,
    /// The payment's id.
    pub charge_id: String,
    /// The stock reservation's id.
    pub reservation_id: String,
    /// The receipt email's id.
    pub email_id: String,
}

/// Errors of the stand-in services.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The card was declined: retrying will not help.
    #[error("payment of {0} cents declined")]
    Declined(u64),
    /// The inventory service did not answer in time.
    #[error("inventory service timed out (attempt {0})")]
    InventoryTimeout(u32),
}

/// The durable workflow.
pub async fn workflow(ctx: DurableContext, order: Order) -> Result<Receipt, DurableError> {
    let charge_id: String = ctx
        .step("charge", |s| {
            let order = order.clone();
            async move {
                // The execution id + op id make a natural idempotency key.
                let key = format!("{}/{}", s.execution_id(), s.op_id());
                payments::charge(&order, &key).map_err(DurableError::terminal)
            }
        })
        .await?;

    ctx.sleep("cool-off", Duration::from_secs(10)).await?;

    let reservation_id: String = ctx
        .step("reserve", |s| {
            let order = order.clone();
            async move { inventory::reserve(&order, s.attempt()) }
        })
        .retry(RetryPolicy::exponential().max_attempts(5))
        .await?;

    let email_id: String = ctx
        .step("email", |_| {
            let order = order.clone();
            async move { Ok::<_, DurableError>(email::send_receipt(&order)) }
        })
        .await?;

    Ok(Receipt {
        order_id: order.order_id,
        charge_id,
        reservation_id,
        email_id,
    })
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

/// The stand-in payment gateway.
pub mod payments {
    use super::*;

    static CALLS: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Charges an order; declines 0 and anything over $10,000.
    pub fn charge(order: &Order, idempotency_key: &str) -> Result<String, ServiceError> {
        if order.amount_cents == 0 || order.amount_cents > 1_000_000 {
            return Err(ServiceError::Declined(order.amount_cents));
        }
        let n = bump(&CALLS, &order.order_id);
        tracing::info!(order = %order.order_id, idempotency_key, "charged card");
        Ok(format!("ch-{}-{n}", order.order_id))
    }

    /// How many times an order has been charged.
    pub fn charges(order_id: &str) -> u32 {
        count(&CALLS, order_id)
    }
}

/// The stand-in inventory service.
pub mod inventory {
    use super::*;

    static CALLS: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Reserves stock; fails the first `fail_reserve_attempts` attempts.
    pub fn reserve(order: &Order, attempt: u32) -> Result<String, ServiceError> {
        bump(&CALLS, &order.order_id);
        if attempt <= order.fail_reserve_attempts {
            return Err(ServiceError::InventoryTimeout(attempt));
        }
        Ok(format!("rsv-{}", order.order_id))
    }

    /// How many reservation attempts an order has seen.
    pub fn attempts(order_id: &str) -> u32 {
        count(&CALLS, order_id)
    }
}

/// The stand-in email service.
pub mod email {
    use super::*;

    static CALLS: std::sync::LazyLock<Mutex<HashMap<String, u32>>> =
        std::sync::LazyLock::new(Default::default);

    /// Sends the receipt.
    pub fn send_receipt(order: &Order) -> String {
        let n = bump(&CALLS, &order.order_id);
        format!("em-{}-{n}", order.order_id)
    }

    /// How many receipts an order has been sent.
    pub fn sent(order_id: &str) -> u32 {
        count(&CALLS, order_id)
    }
}
