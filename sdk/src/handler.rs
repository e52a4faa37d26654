//! Handlers: a user's async function, type-erased for the runtime.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::DurableContext;
use crate::error::DurableError;

/// A durable handler, ready to be run by [`crate::run`] or the test runtime.
/// Made with [`handler`].
#[derive(Clone)]
pub struct Handler {
    inner: Arc<dyn ErasedHandler>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

trait ErasedHandler: Send + Sync {
    fn call(
        &self,
        ctx: DurableContext,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, DurableError>>;
}

struct FnHandler<F, I, O> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<F, Fut, I, O> ErasedHandler for FnHandler<F, I, O>
where
    F: Fn(DurableContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, DurableError>> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + 'static,
{
    fn call(
        &self,
        ctx: DurableContext,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, DurableError>> {
        let input: I = match serde_json::from_value(input) {
            Ok(i) => i,
            Err(e) => {
                return Box::pin(std::future::ready(Err(DurableError::Payload(format!(
                    "the execution input does not match the handler's input type: {e}"
                )))));
            }
        };
        let fut = (self.f)(ctx, input);
        Box::pin(async move {
            let out = fut.await?;
            serde_json::to_value(out).map_err(|e| {
                DurableError::Payload(format!("the handler's output cannot be serialized: {e}"))
            })
        })
    }
}

/// Wraps an `async fn(DurableContext, I) -> Result<O, DurableError>` as a
/// [`Handler`]. The input is decoded from the execution's JSON input and the
/// output encoded to JSON.
pub fn handler<F, Fut, I, O>(f: F) -> Handler
where
    F: Fn(DurableContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, DurableError>> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + 'static,
{
    Handler {
        inner: Arc::new(FnHandler {
            f,
            _types: PhantomData,
        }),
    }
}

impl Handler {
    pub(crate) fn call(
        &self,
        ctx: DurableContext,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, DurableError>> {
        self.inner.call(ctx, input)
    }
}
