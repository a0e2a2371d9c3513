//! `PaymentService` over gRPC: parse the request, run it in a transaction, answer.

use crowdcrunch_outbox::Outbox;
use crowdcrunch_proto::payments::v1 as pb;
use crowdcrunch_proto::payments::v1::payment_service_server::PaymentService;
use crowdcrunch_runtime::Database;
use crowdcrunch_runtime::access::Caller;
use crowdcrunch_runtime::idempotency::IdempotencyKey;
use crowdcrunch_runtime::pagination::PageTokens;
use tonic::{Request, Response, Status};

use crate::domain::{
    NewCardToken, NewPayment, NewRefund, PaymentId, PaymentQuery, PaymentTransition, Transition,
    YearMonth, money, parse_payment_ids,
};
use crate::error::Error;
use crate::{events, storage};

/// The `PaymentService` implementation.
#[derive(Debug, Clone)]
pub struct PaymentApi {
    database: Database,
    outbox: Outbox,
    page_tokens: PageTokens,
}

impl PaymentApi {
    /// The service over a migrated database and its outbox, signing its page tokens with
    /// `page_tokens`.
    pub fn new(database: Database, outbox: Outbox, page_tokens: PageTokens) -> Self {
        Self {
            database,
            outbox,
            page_tokens,
        }
    }

    /// Captures or voids the payment `id` names, in a transaction that records the event when the
    /// payment changes; a payment that already had the change is answered unchanged. `request`
    /// is the whole request, the fingerprint of its idempotency record.
    async fn transition(
        &self,
        transition: Transition,
        id: &str,
        request_id: &str,
        request: &impl prost::Message,
    ) -> Result<pb::Payment, Error> {
        let asked = PaymentTransition::parse(id, request_id).map_err(Error::InvalidArgument)?;
        let key = asked
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new(transition.operation(), id, request));
        self.outbox
            .transaction(key.as_ref(), async |connection| {
                let applied = storage::transition(connection, &asked.id, transition).await?;
                if applied.changed {
                    let event = events::transitioned(&applied.payment, transition);
                    tracing::debug!(payment_id = %applied.payment.id, "{}", event.event_type);
                    self.outbox.enqueue(connection, event).await?;
                }
                Ok::<_, Error>(applied.payment)
            })
            .await
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn tokenize_card(
        &self,
        request: Request<pb::TokenizeCardRequest>,
    ) -> Result<Response<pb::CardToken>, Status> {
        let new = NewCardToken::parse(request.get_ref(), YearMonth::now())
            .map_err(Error::InvalidArgument)?;
        // The card is parsed and dropped here: only its brand, last4 and expiry go on.
        drop(request);
        let key = new
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("TokenizeCard", id, &new.fingerprint()));
        let token = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let token = storage::insert_token(connection, &new.card).await?;
                self.outbox
                    .enqueue(connection, events::card_tokenized(&token))
                    .await?;
                Ok::<_, Error>(token)
            })
            .await?;
        tracing::debug!(card_token = %token.token, brand = %token.brand, "card tokenized");
        Ok(Response::new(token))
    }

    async fn authorize_payment(
        &self,
        request: Request<pb::AuthorizePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let request = request.into_inner();
        let new = NewPayment::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = new
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("AuthorizePayment", id, &request));
        let payment = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let token = storage::find_token(connection, &new.card_token)
                    .await?
                    .ok_or_else(|| {
                        Error::invalid("card_token", "is not a token that TokenizeCard returned")
                    })?;
                let payment = storage::insert_payment(connection, &new, &token).await?;
                self.outbox
                    .enqueue(connection, events::payment_authorized(&payment))
                    .await?;
                Ok::<_, Error>(payment)
            })
            .await?;
        record_authorization(&payment);
        Ok(Response::new(payment))
    }

    async fn capture_payment(
        &self,
        request: Request<pb::CapturePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let request = request.into_inner();
        let payment = self
            .transition(
                Transition::Capture,
                &request.id,
                &request.request_id,
                &request,
            )
            .await?;
        Ok(Response::new(payment))
    }

    async fn void_payment(
        &self,
        request: Request<pb::VoidPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let request = request.into_inner();
        let payment = self
            .transition(Transition::Void, &request.id, &request.request_id, &request)
            .await?;
        Ok(Response::new(payment))
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let request = request.into_inner();
        let refund = NewRefund::try_from(&request).map_err(Error::InvalidArgument)?;
        let key = refund
            .request_id
            .clone()
            .map(|id| IdempotencyKey::new("RefundPayment", id, &request));
        let payment = self
            .outbox
            .transaction(key.as_ref(), async |connection| {
                let (payment, refund_id) = storage::refund(connection, &refund).await?;
                let amount = money(&refund.amount.currency_code, refund.amount.minor_units);
                let event = events::refund_issued(&payment, &refund_id, &amount, &refund.reason);
                self.outbox.enqueue(connection, event).await?;
                tracing::debug!(
                    payment_id = %payment.id,
                    refund_id,
                    minor_units = refund.amount.minor_units,
                    "refund issued"
                );
                Ok::<_, Error>(payment)
            })
            .await?;
        Ok(Response::new(payment))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let id = PaymentId::parse(&request.get_ref().id, "id")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(
            storage::get(&mut connection, &id, owned_by).await?,
        ))
    }

    async fn batch_get_payments(
        &self,
        request: Request<pb::BatchGetPaymentsRequest>,
    ) -> Result<Response<pb::BatchGetPaymentsResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let ids = parse_payment_ids(&request.get_ref().ids).map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        let payments = storage::batch_get(&mut connection, &ids, owned_by).await?;
        Ok(Response::new(pb::BatchGetPaymentsResponse { payments }))
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        let owned_by = storage::owned_by(Caller::of(&request)?.owner_scope());
        let query = PaymentQuery::parse(request.get_ref(), &self.page_tokens)
            .map_err(Error::InvalidArgument)?;
        let mut connection = self.database.acquire().await.map_err(Error::from)?;
        Ok(Response::new(
            storage::list(&mut connection, &query, owned_by).await?,
        ))
    }
}

/// Counter of authorisations answered, by `result` (`authorized` or `declined`) and the decline
/// `reason` (empty when authorised).
const AUTHORIZATIONS: &str = "payments_authorizations_total";

/// Counts an authorisation's result and logs it as what it was: a declined payment is never
/// logged as authorised.
fn record_authorization(payment: &pb::Payment) {
    let declined = payment.status() == pb::PaymentStatus::Declined;
    let result = if declined { "declined" } else { "authorized" };
    metrics::counter!(
        AUTHORIZATIONS,
        "result" => result,
        "reason" => payment.decline_reason.clone(),
    )
    .increment(1);
    if declined {
        tracing::debug!(
            payment_id = %payment.id,
            order_id = %payment.order_id,
            reason = %payment.decline_reason,
            "payment declined"
        );
    } else {
        tracing::debug!(
            payment_id = %payment.id,
            order_id = %payment.order_id,
            "payment authorised"
        );
    }
}
