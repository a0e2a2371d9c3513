-- The customer who pays (the order's), so that a customer reads only their own payments. Payments
-- stored before this name none and are read by staff only.
ALTER TABLE payments ADD COLUMN customer_id TEXT NOT NULL DEFAULT '';
CREATE INDEX payments_by_customer ON payments (customer_id, id);
