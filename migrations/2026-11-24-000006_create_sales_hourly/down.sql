DROP TABLE sales_hourly;
