-- The catalog. available + reserved is the stock on the shelf; reserved units are held by pending forms.
CREATE TABLE products (
    id        BIGINT NOT NULL AUTO_INCREMENT,
    name      VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    price     BIGINT NOT NULL,
    available BIGINT NOT NULL,
    reserved  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    CONSTRAINT products_price_positive CHECK (price >= 1),
    CONSTRAINT products_available_not_negative CHECK (available >= 0),
    CONSTRAINT products_reserved_not_negative CHECK (reserved >= 0)
) ENGINE = InnoDB;
