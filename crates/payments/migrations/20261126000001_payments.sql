-- Card tokens: what may be kept of a card (never its number or CVC), and what the simulated card
-- network will answer when it is charged (`outcome`: approve, card_declined, insufficient_funds).
CREATE TABLE card_tokens (
    token TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    exp_month BIGINT NOT NULL,
    exp_year BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    create_time BIGINT NOT NULL
);

-- Payments, amounts in integer minor units of `currency_code`. 0 <= refunded <= captured <= amount.
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    currency_code TEXT NOT NULL,
    amount BIGINT NOT NULL,
    captured BIGINT NOT NULL,
    refunded BIGINT NOT NULL,
    status TEXT NOT NULL,
    decline_reason TEXT NOT NULL,
    card_token TEXT NOT NULL REFERENCES card_tokens (token),
    card_brand TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    CHECK (0 <= refunded AND refunded <= captured AND captured <= amount)
);

CREATE INDEX payments_by_order ON payments (order_id, id);

-- Every refund given, so that the refunded total of a payment is accounted for.
CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    amount BIGINT NOT NULL,
    reason TEXT NOT NULL,
    create_time BIGINT NOT NULL
);

CREATE INDEX refunds_by_payment ON refunds (payment_id);
