CREATE TABLE reservations (id serial PRIMARY KEY, cabin_id integer NOT NULL REFERENCES cabins(id), guest_phone text NOT NULL, nights integer NOT NULL);
