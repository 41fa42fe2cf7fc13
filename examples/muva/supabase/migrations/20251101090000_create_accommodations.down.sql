DROP TABLE accommodations;
