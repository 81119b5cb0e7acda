-- ERP/OMS source schema (idempotent). REPLICA IDENTITY FULL everywhere: delete and update events then carry
-- the full before-image (SCD2 history and dead-letter diagnostics need it).
CREATE TABLE IF NOT EXISTS warehouses (
    warehouse_id integer PRIMARY KEY,
    code         text    NOT NULL UNIQUE,
    name         text    NOT NULL,
    city         text    NOT NULL,
    country      text    NOT NULL
);
CREATE TABLE IF NOT EXISTS suppliers (
    supplier_id integer PRIMARY KEY,
    name        text    NOT NULL,
    country     text    NOT NULL,
    email       text
);
CREATE TABLE IF NOT EXISTS products (
    sku         text          PRIMARY KEY,
    title       text          NOT NULL,
    category    text          NOT NULL,
    price       numeric(12,2) NOT NULL CHECK (price >= 0),
    currency    text          NOT NULL,
    active      boolean       NOT NULL DEFAULT true,
    supplier_id integer       REFERENCES suppliers (supplier_id),
    updated_at  timestamptz   NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS inventory (
    sku          text    NOT NULL REFERENCES products (sku) ON DELETE CASCADE,
    warehouse_id integer NOT NULL REFERENCES warehouses (warehouse_id),
    on_hand      integer NOT NULL,
    PRIMARY KEY (sku, warehouse_id)
);
CREATE TABLE IF NOT EXISTS customers (
    customer_id       bigint      PRIMARY KEY,
    name              text        NOT NULL,
    email             text,
    address           text,
    country           text        NOT NULL,
    marketing_consent boolean     NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS fx_rates (
    currency    text          PRIMARY KEY,
    rate_to_eur numeric(18,8) NOT NULL,
    updated_at  timestamptz   NOT NULL DEFAULT now()
);
ALTER TABLE warehouses REPLICA IDENTITY FULL;
ALTER TABLE suppliers  REPLICA IDENTITY FULL;
ALTER TABLE products   REPLICA IDENTITY FULL;
ALTER TABLE inventory  REPLICA IDENTITY FULL;
ALTER TABLE customers  REPLICA IDENTITY FULL;
ALTER TABLE fx_rates   REPLICA IDENTITY FULL;
