-- The customer who returns (the order's), so that a customer reads only their own returns. Returns
-- stored before this name none and are read by staff only.
ALTER TABLE returns ADD COLUMN customer_id TEXT NOT NULL DEFAULT '';
CREATE INDEX returns_by_customer ON returns (customer_id, id);
