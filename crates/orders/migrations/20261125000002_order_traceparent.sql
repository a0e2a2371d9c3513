-- The W3C traceparent of the PlaceOrder call: the saga's steps, run later and possibly by another
-- replica, continue that trace, so the events and calls they make carry its trace id.
ALTER TABLE orders ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
