-- Units sold per product per hour (the hour's start, UTC): the ranking sums at most 24 x days
-- buckets per product, however many payments there were. The key serves the window's range scan.
CREATE TABLE sales_hourly (
    hour       DATETIME NOT NULL,
    product_id BIGINT NOT NULL,
    units      BIGINT NOT NULL,
    PRIMARY KEY (hour, product_id),
    KEY sales_hourly_by_product (product_id),
    CONSTRAINT sales_hourly_product FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT sales_hourly_units_positive CHECK (units >= 1)
) ENGINE = InnoDB;
