-- Uploaded images are JPEG, PNG or WebP: already compressed. With the default
-- storage PostgreSQL tries to compress every such value before it moves it
-- out of line, and fails: 1.1 ms per 79 KB photo, against 0.25 ms without
-- trying (measured here). Store them out of line, uncompressed. Applies to
-- rows written from now on; nothing is rewritten.
ALTER TABLE job_inputs ALTER COLUMN bytes SET STORAGE EXTERNAL,
                       ALTER COLUMN second_bytes SET STORAGE EXTERNAL;
ALTER TABLE batch_item_inputs ALTER COLUMN bytes SET STORAGE EXTERNAL;
