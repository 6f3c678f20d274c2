-- Order forms. pending_user is the user id while the form is pending and NULL after, so the
-- unique index allows at most one pending form per user. Times are UTC.
CREATE TABLE order_forms (
    id           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    pending_user VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    status       VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    total        BIGINT NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    expires_at   DATETIME(6) NOT NULL,
    closed_at    DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY order_forms_one_pending_per_user (pending_user),
    KEY order_forms_due (status, expires_at),
    KEY order_forms_by_user (user_id, created_at),
    CONSTRAINT order_forms_user FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT order_forms_status CHECK (status IN ('pending', 'paid', 'expired', 'replaced')),
    CONSTRAINT order_forms_pending_user CHECK ((status = 'pending') = (pending_user IS NOT NULL)),
    CONSTRAINT order_forms_total_not_negative CHECK (total >= 0)
) ENGINE = InnoDB;
