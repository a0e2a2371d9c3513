//! The services orders calls.

use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_client::FulfillmentServiceClient;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_proto::payments::v1::payment_service_client::PaymentServiceClient;
use crowdcrunch_runtime::client::GrpcChannel;

/// Clients of the services orders depends on.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Customer accounts: does the customer exist.
    pub customers: CustomerServiceClient<GrpcChannel>,
    /// Prices and stock reservations.
    pub inventory: InventoryServiceClient<GrpcChannel>,
    /// Card tokens, authorisation, capture, void and refund.
    pub payments: PaymentServiceClient<GrpcChannel>,
    /// Shipments.
    pub fulfillment: FulfillmentServiceClient<GrpcChannel>,
    /// The event log, read for shipment progress.
    pub ledger: LedgerServiceClient<GrpcChannel>,
}
