-- Orders and the persisted progress of their saga. Money in integer minor units; booleans as
-- 0/1 BIGINT (portable); timestamps as BIGINT microseconds since the Unix epoch.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    -- PlaceOrder's request id: a replay finds the order it created.
    request_id TEXT UNIQUE,
    customer_id TEXT NOT NULL,
    status BIGINT NOT NULL,
    currency_code TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    recipient TEXT NOT NULL,
    line1 TEXT NOT NULL,
    line2 TEXT NOT NULL,
    city TEXT NOT NULL,
    region TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    country_code TEXT NOT NULL,
    failure_reason TEXT NOT NULL,
    card_token TEXT NOT NULL,
    card_brand TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    -- Saga progress: what has been done downstream, so a restart resumes or compensates.
    reserved BIGINT NOT NULL,
    released BIGINT NOT NULL,
    payment_id TEXT NOT NULL,
    authorized BIGINT NOT NULL,
    captured BIGINT NOT NULL,
    voided BIGINT NOT NULL,
    refunded BIGINT NOT NULL,
    committed BIGINT NOT NULL,
    restocked BIGINT NOT NULL,
    shipment_id TEXT NOT NULL,
    shipment_cancelled BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL,
    -- When compensating after a crash: payment and shipment looked up downstream once.
    reconciled BIGINT NOT NULL,
    -- When compensating: the status the order ends in (0 while going forward).
    compensate_to BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_time BIGINT NOT NULL,
    lease_owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);

CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_due ON orders (status, next_attempt_time);

CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- How far the ledger has been read, per consumer: a restart resumes without missing or
-- double-applying an event.
CREATE TABLE ledger_checkpoints (
    consumer TEXT PRIMARY KEY,
    last_sequence BIGINT NOT NULL
);
