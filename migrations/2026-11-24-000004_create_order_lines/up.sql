-- The lines of an order form, one per product, priced when the order was placed. A pending
-- form's lines are its reservation; a paid form's lines are what was sold.
CREATE TABLE order_lines (
    order_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    product_id BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    price      BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id),
    KEY order_lines_by_product (product_id),
    CONSTRAINT order_lines_order FOREIGN KEY (order_id) REFERENCES order_forms (id),
    CONSTRAINT order_lines_product FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT order_lines_count_positive CHECK (count >= 1),
    CONSTRAINT order_lines_price_positive CHECK (price >= 1)
) ENGINE = InnoDB;
