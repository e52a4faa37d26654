//! What the DynamoDB backend counts for [`crate::cost`]: every request the
//! SDK client sends, seen by an interceptor on the client (so retries,
//! chunk items, conflict read-backs and batch reads are all there).
//!
//! While a meter is in scope the interceptor asks DynamoDB for
//! `ReturnConsumedCapacity=TOTAL` and counts the capacity units it answers
//! with; where the server does not report them (ScyllaDB Alternator, a
//! failed condition check) the units are computed from the bytes: the
//! request body for a write (1 KB a unit), the response body for a read (4 KB
//! a unit). An attempt counts when DynamoDB charges for it: it succeeded, or
//! it was a write whose condition failed. Throttled and failed attempts are
//! not charged, so not counted.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// What the attempt sent: a write or a read (`None`: neither, e.g. table
/// management), and its body's bytes. The request is gone by the time the
/// answer is read, so it is noted before it goes.
#[derive(Debug, Clone)]
struct Sent {
    write: Option<bool>,
    bytes: u64,
}

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

/// The interceptor every client of the store carries.
#[derive(Debug, Default)]
pub(super) struct CountRequests;

fn total() -> Option<ReturnConsumedCapacity> {
    Some(ReturnConsumedCapacity::Total)
}

fn units(c: &[&ConsumedCapacity]) -> Option<u64> {
    let sum: Option<f64> = c.iter().map(|c| c.capacity_units()).sum();
    sum.filter(|_| !c.is_empty()).map(|u| u.ceil() as u64)
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "durafn-count-requests"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !crate::cost::counting() {
            return Ok(());
        }
        let input = context.input_mut();
        if let Some(i) = input.downcast_mut::<PutItemInput>() {
            i.return_consumed_capacity = total();
        } else if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
            i.return_consumed_capacity = total();
        } else if let Some(i) = input.downcast_mut::<DeleteItemInput>() {
            i.return_consumed_capacity = total();
        } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = total();
        } else if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = total();
        } else if let Some(i) = input.downcast_mut::<ScanInput>() {
            i.return_consumed_capacity = total();
        } else if let Some(i) = input.downcast_mut::<BatchGetItemInput>() {
            i.return_consumed_capacity = total();
        } else if let Some(i) = input.downcast_mut::<BatchWriteItemInput>() {
            i.return_consumed_capacity = total();
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !crate::cost::counting() {
            return Ok(());
        }
        let request = context.request();
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .rsplit('.')
            .next()
            .unwrap_or_default();
        let write = match target {
            "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" => Some(true),
            "GetItem" | "Query" | "Scan" | "BatchGetItem" => Some(false),
            _ => None,
        };
        let bytes = request.body().bytes().map_or(0, <[u8]>::len) as u64;
        cfg.interceptor_state().store_put(Sent { write, bytes });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !crate::cost::counting() {
            return Ok(());
        }
        let (Some(sent), Some(response)) = (cfg.load::<Sent>().cloned(), context.response()) else {
            return Ok(());
        };
        let Some(write) = sent.write else {
            return Ok(()); // table management, not an execution's cost
        };
        let status = response.status().as_u16();
        let body = response.body().bytes().unwrap_or_default();
        let charged = (200..300).contains(&status)
            || (write
                && status == 400
                && std::str::from_utf8(body)
                    .is_ok_and(|b| b.contains("ConditionalCheckFailedException")));
        if !charged {
            return Ok(());
        }
        let reported = match context.output_or_error() {
            Some(Ok(out)) => {
                if let Some(o) = out.downcast_ref::<PutItemOutput>() {
                    units(&o.consumed_capacity().into_iter().collect::<Vec<_>>())
                } else if let Some(o) = out.downcast_ref::<UpdateItemOutput>() {
                    units(&o.consumed_capacity().into_iter().collect::<Vec<_>>())
                } else if let Some(o) = out.downcast_ref::<DeleteItemOutput>() {
                    units(&o.consumed_capacity().into_iter().collect::<Vec<_>>())
                } else if let Some(o) = out.downcast_ref::<GetItemOutput>() {
                    units(&o.consumed_capacity().into_iter().collect::<Vec<_>>())
                } else if let Some(o) = out.downcast_ref::<QueryOutput>() {
                    units(&o.consumed_capacity().into_iter().collect::<Vec<_>>())
                } else if let Some(o) = out.downcast_ref::<ScanOutput>() {
                    units(&o.consumed_capacity().into_iter().collect::<Vec<_>>())
                } else if let Some(o) = out.downcast_ref::<BatchGetItemOutput>() {
                    units(&o.consumed_capacity().iter().collect::<Vec<_>>())
                } else if let Some(o) = out.downcast_ref::<BatchWriteItemOutput>() {
                    units(&o.consumed_capacity().iter().collect::<Vec<_>>())
                } else {
                    None
                }
            }
            _ => None,
        };
        if write {
            crate::cost::record_write(sent.bytes, reported);
        } else {
            crate::cost::record_read(body.len() as u64, reported);
        }
        Ok(())
    }
}
