-- Payments. The unique order_id makes paying one form twice impossible; the lines are the form's.
CREATE TABLE payments (
    id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    order_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    amount   BIGINT NOT NULL,
    paid_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY payments_one_per_order (order_id),
    KEY payments_by_user (user_id, paid_at),
    CONSTRAINT payments_order FOREIGN KEY (order_id) REFERENCES order_forms (id),
    CONSTRAINT payments_amount_not_negative CHECK (amount >= 0)
) ENGINE = InnoDB;
