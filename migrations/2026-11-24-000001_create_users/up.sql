-- Registered users and their point balances. Ids are case-sensitive ASCII (SPEC: [A-Za-z0-9._-]).
CREATE TABLE users (
    id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    balance    BIGINT NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT users_balance_not_negative CHECK (balance >= 0)
) ENGINE = InnoDB;
