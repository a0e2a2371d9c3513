-- Return requests: returns (refund) and exchanges (replacement). Money in integer minor units;
-- timestamps as BIGINT microseconds since the Unix epoch.
CREATE TABLE returns (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind BIGINT NOT NULL,
    status BIGINT NOT NULL,
    reason TEXT NOT NULL,
    rejection_reason TEXT NOT NULL,
    currency_code TEXT NOT NULL,
    refund_minor BIGINT NOT NULL,
    refund_payment_id TEXT NOT NULL,
    replacement_shipment_id TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);

CREATE INDEX returns_order ON returns (order_id, id);

CREATE TABLE return_lines (
    return_id TEXT NOT NULL REFERENCES returns (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (return_id, line_no)
);
