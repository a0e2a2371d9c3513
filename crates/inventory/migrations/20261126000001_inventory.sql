-- The catalogue. Prices are an ISO 4217 code and integer minor units; `active` is 1 or 0.
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    price_currency_code TEXT NOT NULL,
    price_minor_units BIGINT NOT NULL CHECK (price_minor_units >= 0),
    active BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
CREATE INDEX products_by_active ON products (active, sku);

-- One row per product. `on_hand` counts the units in the warehouse, reserved or not; `reserved`
-- the units held by RESERVED reservations. The checks are the last line of defence: the service
-- moves stock with conditional updates that never break them.
CREATE TABLE stock (
    sku TEXT PRIMARY KEY REFERENCES products (sku),
    on_hand BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    CHECK (reserved >= 0 AND on_hand >= reserved AND on_hand <= 2147483647)
);

-- Holds for orders (and exchanges' replacement goods), keyed by the client's id: RESERVED, then
-- COMMITTED or RELEASED.
CREATE TABLE reservations (
    reservation_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);

-- What a reservation holds, in the order the client gave the lines.
CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    line_number BIGINT NOT NULL,
    sku TEXT NOT NULL REFERENCES products (sku),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, line_number)
);
