//! The roster: every service of the system, one row each. Adding a service is one row here plus
//! its crate; its `serve` subcommand value, its `dev` port flag, its endpoints flag and variable,
//! its place in the edge, in `smoke` and in the chart test all follow from the row.

use crowdcrunch_proto::customers::v1::customer_service_client::CustomerServiceClient;
use crowdcrunch_proto::fulfillment::v1::fulfillment_service_client::FulfillmentServiceClient;
use crowdcrunch_proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use crowdcrunch_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use crowdcrunch_proto::orders::v1::order_service_client::OrderServiceClient;
use crowdcrunch_proto::payments::v1::payment_service_client::PaymentServiceClient;
use crowdcrunch_runtime::config::UpstreamNames;
use sqlx::migrate::Migrator;
use {
    crowdcrunch_customers as customers, crowdcrunch_exchanges as exchanges,
    crowdcrunch_fulfillment as fulfillment, crowdcrunch_inventory as inventory,
    crowdcrunch_ledger as ledger, crowdcrunch_orders as orders, crowdcrunch_payments as payments,
};

use crate::services::{Made, Parts};

/// One service of the system.
#[derive(Debug)]
pub struct Service {
    /// Its name: `crowdcrunch serve <name>`, its logs and event source, the flags
    /// `--<name>-port` (`dev`) and `--<name>-endpoints`, its entry in the chart's `services`.
    pub name: &'static str,
    /// What it does, as `serve --help` says.
    pub about: &'static str,
    /// Its own port in `dev`, and the default of `serve`.
    pub default_port: u16,
    /// The services it calls: the call graph, as `chart/values.yaml` also states it.
    pub calls: &'static [&'static str],
    /// Its database: an SQLite file stem, or a PostgreSQL schema.
    pub database: &'static str,
    /// The migrations of its database.
    pub migrator: &'static Migrator,
    /// Whether it records its changes in an outbox that a relay delivers to the [`EVENT_LOG`].
    pub outbox: bool,
    /// The edge's root connection over its resources, which `smoke` lists.
    pub listed_by: &'static str,
    /// How it is made from its open database, its outbox and its channels.
    pub make: fn(Parts<'_>) -> anyhow::Result<Made>,
}

/// The service every outbox relay delivers its events to.
pub const EVENT_LOG: &str = "ledger";

/// The edge's port in `dev` (and the default of `serve edge`). The edge calls every service.
pub const EDGE_PORT: u16 = 8080;

/// Every service, in start order: each after the services it calls (the ledger first, since every
/// other delivers its events to it).
pub static SERVICES: [Service; 7] = [
    Service {
        name: "ledger",
        about: "The append-only log of every event",
        default_port: 50057,
        calls: &[],
        database: ledger::DATABASE_NAME,
        migrator: &ledger::MIGRATOR,
        outbox: false,
        listed_by: "events",
        make: |parts| {
            let database = parts.into_database();
            Ok(Made::new(move |shutdown| {
                ledger::service(database, shutdown)
            }))
        },
    },
    Service {
        name: "customers",
        about: "Customer accounts",
        default_port: 50051,
        calls: &[EVENT_LOG],
        database: customers::DATABASE_NAME,
        migrator: &customers::MIGRATOR,
        outbox: true,
        listed_by: "customers",
        make: |parts| parts.with_outbox_only(customers::service),
    },
    Service {
        name: "inventory",
        about: "The product catalogue, stock and reservations",
        default_port: 50052,
        calls: &[EVENT_LOG],
        database: inventory::DATABASE_NAME,
        migrator: &inventory::MIGRATOR,
        outbox: true,
        listed_by: "products",
        make: |parts| parts.with_outbox_only(inventory::service),
    },
    Service {
        name: "payments",
        about: "Card tokens, authorisations, captures, voids and refunds",
        default_port: 50054,
        calls: &[EVENT_LOG],
        database: payments::DATABASE_NAME,
        migrator: &payments::MIGRATOR,
        outbox: true,
        listed_by: "payments",
        make: |parts| parts.with_outbox_only(payments::service),
    },
    Service {
        name: "fulfillment",
        about: "Shipments and their progress",
        default_port: 50055,
        calls: &[EVENT_LOG],
        database: fulfillment::DATABASE_NAME,
        migrator: &fulfillment::MIGRATOR,
        outbox: true,
        listed_by: "shipments",
        make: |parts| parts.with_outbox_only(fulfillment::service),
    },
    Service {
        name: "orders",
        about: "Orders and the order saga",
        default_port: 50053,
        calls: &[
            "customers",
            "inventory",
            "payments",
            "fulfillment",
            EVENT_LOG,
        ],
        database: orders::DATABASE_NAME,
        migrator: &orders::MIGRATOR,
        outbox: true,
        listed_by: "orders",
        make: |parts| {
            let clients = orders::Clients {
                customers: CustomerServiceClient::new(parts.channel("customers")?),
                inventory: InventoryServiceClient::new(parts.channel("inventory")?),
                payments: PaymentServiceClient::new(parts.channel("payments")?),
                fulfillment: FulfillmentServiceClient::new(parts.channel("fulfillment")?),
                ledger: LedgerServiceClient::new(parts.channel(EVENT_LOG)?),
            };
            let (database, outbox) = parts.into_database_and_outbox()?;
            Ok(Made::new(move |shutdown| {
                orders::service(database, outbox, clients, shutdown)
            }))
        },
    },
    Service {
        name: "exchanges",
        about: "Returns and exchanges",
        default_port: 50056,
        calls: &["orders", "inventory", "payments", "fulfillment", EVENT_LOG],
        database: exchanges::DATABASE_NAME,
        migrator: &exchanges::MIGRATOR,
        outbox: true,
        listed_by: "returns",
        make: |parts| {
            let clients = exchanges::Clients {
                orders: OrderServiceClient::new(parts.channel("orders")?),
                inventory: InventoryServiceClient::new(parts.channel("inventory")?),
                payments: PaymentServiceClient::new(parts.channel("payments")?),
                fulfillment: FulfillmentServiceClient::new(parts.channel("fulfillment")?),
            };
            let (database, outbox) = parts.into_database_and_outbox()?;
            Ok(Made::new(move |_| {
                exchanges::service(database, outbox, clients)
            }))
        },
    },
];

/// The service called `name`.
pub fn service(name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|service| service.name == name)
}

/// The services in the order of their default ports, as `dev` lists them.
pub fn by_port() -> Vec<&'static Service> {
    let mut services: Vec<_> = SERVICES.iter().collect();
    services.sort_by_key(|service| service.default_port);
    services
}

/// The roster as the runtime's upstream settings read it: every service may be called, each by
/// its name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roster;

impl UpstreamNames for Roster {
    fn upstream_names() -> impl Iterator<Item = &'static str> {
        by_port().into_iter().map(|service| service.name)
    }
}

/// The endpoints of the services a process calls, one flag and variable per roster row.
pub type UpstreamArgs = crowdcrunch_runtime::config::UpstreamArgs<Roster>;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn each_service_starts_after_the_services_it_calls() {
        for (index, service) in SERVICES.iter().enumerate() {
            for callee in service.calls {
                let position = SERVICES.iter().position(|other| other.name == *callee);
                assert!(
                    position.is_some_and(|position| position < index),
                    "{} calls {callee}, which is not a service started before it",
                    service.name
                );
            }
        }
    }

    #[test]
    fn names_ports_and_databases_are_unique() {
        let names: BTreeSet<_> = SERVICES.iter().map(|service| service.name).collect();
        let ports: BTreeSet<_> = SERVICES
            .iter()
            .map(|service| service.default_port)
            .collect();
        let databases: BTreeSet<_> = SERVICES.iter().map(|service| service.database).collect();
        assert_eq!(names.len(), SERVICES.len());
        assert_eq!(ports.len(), SERVICES.len());
        assert_eq!(databases.len(), SERVICES.len());
        assert!(!ports.contains(&EDGE_PORT));
    }

    #[test]
    fn a_service_with_an_outbox_calls_the_event_log() {
        for service in SERVICES.iter().filter(|service| service.outbox) {
            assert!(
                service.calls.contains(&EVENT_LOG),
                "{}: its outbox relays to {EVENT_LOG}, which it must call",
                service.name
            );
        }
    }
}
