-- Outcomes of charges, orders and payments made with an Idempotency-Key, replayed to retries
-- until expires_at. The row is inserted first in the call's transaction (a concurrent retry
-- waits on the key, then sees it taken) and completed with the outcome at the end; a call that
-- fails leaves no row. An order's or payment's details are read back from their own tables.
CREATE TABLE idempotency_keys (
    user_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    idem_key    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    fingerprint VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    outcome     VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    balance     BIGINT NULL,
    order_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    payment_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at  DATETIME(6) NOT NULL,
    expires_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    KEY idempotency_keys_expiry (expires_at),
    CONSTRAINT idempotency_keys_outcome CHECK (outcome IN ('charged', 'ordered', 'paid'))
) ENGINE = InnoDB;
