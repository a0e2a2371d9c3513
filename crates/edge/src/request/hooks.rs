//! The edge's hooks into every request's execution (an async-graphql extension): the caches of
//! documents and persisted queries, filled once a document validated, the "execution started"
//! flag, the path of resolver errors, and the
//! recording half of null propagation (`propagation.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, NextValidation,
    ResolveInfo,
};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value};

use super::persisted::PersistAs;
use super::propagation::{Outcome, path_of};
use super::{Caches, Unvalidated, Validated};

/// The edge's hooks into every request's execution: the caches filled once a document
/// validated, the "execution started" flag, the path of resolver errors, and null propagation.
struct RequestHooks(Arc<Caches>);

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

    /// Validates a document once: one that validated before answers its remembered result;
    /// one that validates now is kept in the document cache (and its persisted query
    /// remembered), and one that fails validation is kept nowhere.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = match ctx.data_opt::<Validated>() {
            Some(Validated(result)) => *result,
            None => {
                self.0.documents.count_validation();
                let result = next.run(ctx).await?;
                if let Some(unvalidated) = ctx.data_opt::<Unvalidated>() {
                    self.0.documents.validated(
                        &unvalidated.query,
                        &unvalidated.parsed,
                        unvalidated.operation.as_deref(),
                        result,
                    );
                }
                result
            }
        };
        if let Some(persist) = ctx.data_opt::<PersistAs>() {
            self.0.persisted.validated(persist);
        }
        Ok(result)
    }
}

/// Makes the extension of each request, over the one shared cache.
pub(super) struct RequestHooksFactory(pub(super) Arc<Caches>);

impl ExtensionFactory for RequestHooksFactory {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestHooks(self.0.clone()))
    }
}
