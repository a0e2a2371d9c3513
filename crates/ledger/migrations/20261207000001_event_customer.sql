-- The customer an event is about (empty for events about no customer: the catalog, stock), so that
-- a customer reads only the events about them.
ALTER TABLE events ADD COLUMN customer_id TEXT NOT NULL DEFAULT '';
CREATE INDEX events_by_customer ON events (customer_id, sequence);
