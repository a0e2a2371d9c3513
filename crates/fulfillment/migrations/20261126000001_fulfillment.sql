-- Shipments: an order's own (return_id empty) or an exchange's replacement goods. The address is
-- copied in, as it was when the shipment was created.
CREATE TABLE shipments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    return_id TEXT NOT NULL,
    status TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    recipient TEXT NOT NULL,
    line1 TEXT NOT NULL,
    line2 TEXT NOT NULL,
    city TEXT NOT NULL,
    region TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    country_code TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);

CREATE INDEX shipments_by_order ON shipments (order_id, id);

-- What is in each parcel, in the order given; each SKU once per shipment.
CREATE TABLE shipment_lines (
    shipment_id TEXT NOT NULL REFERENCES shipments (id),
    position BIGINT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (shipment_id, position),
    UNIQUE (shipment_id, sku)
);
