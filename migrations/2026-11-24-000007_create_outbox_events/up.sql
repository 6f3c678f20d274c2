-- Payment events waiting for the data platform, written in the payment's transaction; seq keeps
-- commit order. A relay claims due rows by moving next_attempt_at to the end of its lease, so
-- no other relay sends them meanwhile; a failed attempt counts in attempts and sets the next
-- try. Delivered rows keep their delivery time until the retention purge deletes them.
CREATE TABLE outbox_events (
    seq             BIGINT NOT NULL AUTO_INCREMENT,
    event_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    payment_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    occurred_at     DATETIME(6) NOT NULL,
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6) NOT NULL,
    last_error      VARCHAR(1000) CHARACTER SET utf8mb4 NULL,
    delivered_at    DATETIME(6) NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY outbox_events_event_id (event_id),
    KEY outbox_events_due (delivered_at, next_attempt_at),
    CONSTRAINT outbox_events_payment FOREIGN KEY (payment_id) REFERENCES payments (id),
    CONSTRAINT outbox_events_attempts_not_negative CHECK (attempts >= 0)
) ENGINE = InnoDB;
