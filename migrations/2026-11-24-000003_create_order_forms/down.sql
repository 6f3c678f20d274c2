DROP TABLE order_forms;
