-- The customer a shipment goes to (the order's), so that a customer reads only their own shipments.
-- Shipments stored before this name none and are read by staff only.
ALTER TABLE shipments ADD COLUMN customer_id TEXT NOT NULL DEFAULT '';
CREATE INDEX shipments_by_customer ON shipments (customer_id, id);
