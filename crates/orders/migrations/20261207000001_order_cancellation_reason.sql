-- The reason given to CancelOrder, kept when the cancellation is asked for; empty when none was.
ALTER TABLE orders ADD COLUMN cancellation_reason TEXT NOT NULL DEFAULT '';
