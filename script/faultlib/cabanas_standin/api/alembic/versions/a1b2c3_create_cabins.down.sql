DROP TABLE cabins;
