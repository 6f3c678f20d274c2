-- Payment events waiting for the data platform, written in the payment's transaction. seq keeps
-- them in commit order; delivered rows are kept with their delivery time.
CREATE TABLE outbox_events (
    seq          BIGINT NOT NULL AUTO_INCREMENT,
    event_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    payment_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    occurred_at  DATETIME(6) NOT NULL,
    delivered_at DATETIME(6) NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY outbox_events_event_id (event_id),
    KEY outbox_events_undelivered (delivered_at, seq),
    CONSTRAINT outbox_events_payment FOREIGN KEY (payment_id) REFERENCES payments (id)
) ENGINE = InnoDB;
