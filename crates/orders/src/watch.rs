//! Order changes as they commit, for WatchOrder: an in-process broadcast, with a periodic read of
//! the database as a fallback for changes made by another replica.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::order::Order;

/// How many changes a slow watcher may fall behind before it re-reads the order.
const CAPACITY: usize = 1024;

/// Publishes every committed change of an order.
#[derive(Debug, Clone)]
pub struct OrderHub {
    sender: broadcast::Sender<Arc<Order>>,
}

impl Default for OrderHub {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl OrderHub {
    /// Announces `order` as it is now (after its change committed).
    pub fn publish(&self, order: Order) {
        // No watcher is not an error.
        let _ = self.sender.send(Arc::new(order));
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Order>> {
        self.sender.subscribe()
    }
}
