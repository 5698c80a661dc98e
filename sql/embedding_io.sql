-- Text and binary forms, typmod, casts.
SET search_path = personalize, public;

-- text form round-trips, whitespace tolerated, shortest float output
SELECT '[1,2.5,-3]'::embedding;
SELECT '  [ 1 , 2.5,-3 ]  '::embedding;
SELECT '[1e-3, 1.5e10, -0, 0.1]'::embedding;
SELECT '[3.4028235e38,-3.4028235e38,1.4e-45]'::embedding;
SELECT e::text::embedding = e AS round_trips
FROM (SELECT array_to_embedding(array_agg(random()::real * 1000 - 500), -1, false) AS e
      FROM generate_series(1, 300)) s;

-- pgvector-compatible text: every value of the reference file reads and prints back the same
CREATE TEMP TABLE reference (id int, a text, b text, l2 float8, inner_p float8, cosine float8, norm_a float8);
\copy reference FROM 'test/reference/embedding_distances.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT count(*) AS rows, bool_and(a::embedding::text::embedding = a::embedding) AS all_round_trip,
       bool_and(a::embedding::real[] = (string_to_array(trim(both '[]' from a), ',')::real[])) AS same_as_real_array
FROM reference;

-- typmod
SELECT '[1,2,3]'::embedding(3);
CREATE TEMP TABLE items (id int PRIMARY KEY, e embedding(3));
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'items'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO items VALUES (1, '[1,2,3]');
INSERT INTO items VALUES (2, '[1,2]');
INSERT INTO items VALUES (3, ARRAY[1,2,3,4]);
INSERT INTO items VALUES (4, ARRAY[4,5,6]);
INSERT INTO items VALUES (5, ARRAY[0.5,1.5,2.5]::real[]);
UPDATE items SET e = '[1,1]' WHERE id = 1;
SELECT * FROM items ORDER BY id;
SELECT '[1,2]'::embedding::embedding(3);
SELECT '[1,2,3]'::embedding(2);

-- errors: messages here, SQLSTATEs in test/embedding_errors.sql
SELECT '[]'::embedding;
SELECT '[1,2'::embedding;
SELECT '1,2'::embedding;
SELECT '[1,,2]'::embedding;
SELECT '[1,2] x'::embedding;
SELECT '[a]'::embedding;
SELECT '[NaN]'::embedding;
SELECT '[Infinity]'::embedding;
SELECT '[-inf]'::embedding;
SELECT '[1e39]'::embedding;
SELECT '[1e-50]'::embedding;
SELECT array_fill(1, ARRAY[16001])::embedding;
SELECT array_length(array_fill(1, ARRAY[16000])::embedding::real[], 1);
SELECT '[1]'::embedding(16001);
SELECT '[1]'::embedding(0);
SELECT '[1]'::embedding(2, 3);

-- casts from arrays
SELECT ARRAY[1,2,3]::embedding, ARRAY[1.5,2.5]::real[]::embedding,
       ARRAY[1.25,-2]::float8[]::embedding, ARRAY[1.1,2]::numeric[]::embedding;
SELECT ARRAY[1,NULL,3]::embedding;
SELECT ARRAY[[1,2],[3,4]]::embedding;
SELECT '{}'::real[]::embedding;
SELECT ARRAY['NaN']::float8[]::embedding;
SELECT ARRAY['Infinity']::real[]::embedding;
SELECT ARRAY[1e300]::float8[]::embedding;
SELECT ARRAY[1e300]::numeric[]::embedding;
SELECT ARRAY[1,2,3]::embedding(2);

-- casts to arrays
SELECT '[1.5,-2.5,3]'::embedding::real[], '[1.5,-2.5,3]'::embedding::float8[],
       '[1.5,-2.5,3]'::embedding::numeric[], '[1.4,-2.6,3]'::embedding::int[];
SELECT '[3e9]'::embedding::int[];

-- binary form: COPY BINARY out and back in (a file in this cluster's data directory)
SELECT current_setting('data_directory') || '/pg_personalize_regress.bin' AS binfile \gset
CREATE TEMP TABLE bin_src AS SELECT id, a::embedding AS e FROM reference;
COPY bin_src TO :'binfile' (FORMAT binary);
CREATE TEMP TABLE bin_dst (id int, e embedding);
COPY bin_dst FROM :'binfile' (FORMAT binary);
SELECT count(*) AS rows, bool_and(s.e = d.e AND s.e::text = d.e::text) AS identical
FROM bin_src s JOIN bin_dst d USING (id);
CREATE TEMP TABLE bin_typed (id int, e embedding(3));
COPY bin_typed FROM :'binfile' (FORMAT binary);
