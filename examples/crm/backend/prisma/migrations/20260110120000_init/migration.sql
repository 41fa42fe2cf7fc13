CREATE TABLE leads (
    id serial PRIMARY KEY,
    name text NOT NULL,
    phone text,
    created_at timestamptz NOT NULL DEFAULT now()
);
