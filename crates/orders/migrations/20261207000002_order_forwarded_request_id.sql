-- The x-request-id of the PlaceOrder call, which the saga's calls forward so that every service's
-- log lines about the order carry it; empty when the call had none (orders placed before this).
ALTER TABLE orders ADD COLUMN forwarded_request_id TEXT NOT NULL DEFAULT '';
