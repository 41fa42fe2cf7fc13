CREATE TABLE cabins (id serial PRIMARY KEY, name text NOT NULL, beds integer NOT NULL);
