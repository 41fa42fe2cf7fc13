-- Accommodations offered by the tenant.
CREATE TABLE accommodations (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    capacity integer NOT NULL CHECK (capacity > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
