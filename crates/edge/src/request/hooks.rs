//! The edge's hooks into every request's execution (an async-graphql extension): the
//! validation cache, the "execution started" flag, the path of resolver errors, and the
//! recording half of null propagation (`propagation.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, NextValidation,
    ResolveInfo,
};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value};

use super::propagation::{Outcome, path_of};
use super::validation::{ValidationCache, ValidationKey};

/// The edge's hooks into every request's execution: the validation cache, the "execution
/// started" flag, the path of resolver errors, and null propagation.
struct RequestHooks(Arc<ValidationCache>);

#[async_trait::async_trait]
impl Extension for RequestHooks {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(outcome) = ctx.data_opt::<Arc<Outcome>>() {
            outcome.executed.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }

    /// Gives a resolver's error the path of its field (async-graphql's dynamic schema leaves it
    /// out), and propagates a null in a non-null field to its parent.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let path_node = info.path_node;
        let non_null = info.return_type.ends_with('!');
        let outcome = ctx.data_opt::<Arc<Outcome>>();
        match next.run(ctx, info).await {
            Err(mut error) => {
                let path = path_of(path_node);
                if error.path.is_empty() {
                    error.path = path.clone();
                }
                if let Some(outcome) = outcome {
                    if non_null {
                        outcome.null(path);
                    }
                    outcome.keep(&error);
                }
                Err(error)
            }
            Ok(value) => {
                if let Some(outcome) = outcome
                    && outcome.any_nulled.load(Ordering::Relaxed)
                {
                    let path = path_of(path_node);
                    if outcome.child_nulled(&path) {
                        if non_null {
                            outcome.null(path);
                        }
                        return Ok(None);
                    }
                }
                Ok(value)
            }
        }
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(ValidationKey(key)) = ctx.data_opt::<ValidationKey>().copied() else {
            return next.run(ctx).await;
        };
        if let Some(result) = self
            .0
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .copied()
        {
            return Ok(result);
        }
        self.0.runs.fetch_add(1, Ordering::Relaxed);
        let result = next.run(ctx).await?;
        self.0
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(key, result);
        Ok(result)
    }
}

/// Makes the extension of each request, over the one shared cache.
pub(super) struct RequestHooksFactory(pub(super) Arc<ValidationCache>);

impl ExtensionFactory for RequestHooksFactory {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestHooks(self.0.clone()))
    }
}
