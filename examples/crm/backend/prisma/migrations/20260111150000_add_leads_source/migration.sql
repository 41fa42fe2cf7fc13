ALTER TABLE leads ADD COLUMN source text;
