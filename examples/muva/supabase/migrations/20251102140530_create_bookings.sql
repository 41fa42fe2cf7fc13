-- Bookings, protected by row-level security as the seeds' health check expects.
CREATE TABLE bookings (
    id bigserial PRIMARY KEY,
    accommodation_id bigint NOT NULL REFERENCES accommodations(id),
    guest_email text NOT NULL,
    check_in date NOT NULL,
    check_out date NOT NULL CHECK (check_out > check_in)
);
ALTER TABLE bookings ENABLE ROW LEVEL SECURITY;
