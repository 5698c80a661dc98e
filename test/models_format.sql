-- The model format: a format-1 value (as 0.1.0 wrote it, assembled byte by byte
-- here from its documented layout) is still read; a newer format or a corrupt
-- section directory is a clear error, never a misread.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(12);

-- little-endian bytes of integers and doubles
CREATE FUNCTION pg_temp.le(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$SELECT string_agg(substring(b FROM i FOR 1), ''::bytea ORDER BY i DESC) FROM generate_series(1, length(b)) i$$;
CREATE FUNCTION pg_temp.i2(x int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$SELECT pg_temp.le(int2send(x::int2))$$;
CREATE FUNCTION pg_temp.i4(x int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$SELECT pg_temp.le(int4send(x))$$;
CREATE FUNCTION pg_temp.i8(x bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$SELECT pg_temp.le(int8send(x))$$;
CREATE FUNCTION pg_temp.f4(x real) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$SELECT pg_temp.le(float4send(x))$$;
CREATE FUNCTION pg_temp.f8(x float8) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$SELECT pg_temp.le(float8send(x))$$;
CREATE FUNCTION pg_temp.as_model(b bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT '\x' || encode(b, 'hex')$$;

-- Format 1: a popularity model of items 10, 20, 30 with popularity 3, 1, 2 from 6 rows.
-- Header: varlena length, magic, format, algorithm, factors, neighbors, users, items,
-- pad, pairs, rows, null rows, loss, then 11 section offsets (options 152, item ids 160,
-- item popularity 184, the others absent); 196 bytes in all.
CREATE TEMP TABLE v1 AS SELECT
  pg_temp.i4(196 << 2) || pg_temp.i4(x'504d4f44'::int) || pg_temp.i2(1) || pg_temp.i2(1) ||
  pg_temp.i4(0) || pg_temp.i4(0) || pg_temp.i4(0) || pg_temp.i4(3) || pg_temp.i4(0) ||
  pg_temp.i8(0) || pg_temp.i8(6) || pg_temp.i8(1) || pg_temp.f8('NaN') ||
  pg_temp.i8(0 + 152) || pg_temp.i8(0) || pg_temp.i8(160) || pg_temp.i8(184) ||
  pg_temp.i8(0) || pg_temp.i8(0) || pg_temp.i8(0) || pg_temp.i8(0) || pg_temp.i8(0) || pg_temp.i8(0) || pg_temp.i8(0) ||
  convert_to('{}', 'UTF8') || '\x00'::bytea || '\x0000000000'::bytea ||
  pg_temp.i8(10) || pg_temp.i8(20) || pg_temp.i8(30) ||
  pg_temp.f4(3) || pg_temp.f4(1) || pg_temp.f4(2) AS b;
SELECT is((SELECT length(b) FROM v1), 196, 'the format-1 value is 196 bytes, as 0.1.0 laid it out');
SELECT is((SELECT model_info(pg_temp.as_model(b)::model) - 'bytes' FROM v1),
          '{"rows": 6, "items": 3, "format": 2, "options": {}, "algorithm": "popularity", "null_rows": 1}'::jsonb,
          'a format-1 value is read (converted to format 2)');
SELECT is((SELECT pg_temp.as_model(b)::model::text::model::text = pg_temp.as_model(b)::model::text FROM v1), true,
          'its converted form round-trips through text');
SELECT is((SELECT model_without_user(pg_temp.as_model(b)::model, 10) FROM v1) IS NULL, true,
          'a format-1 popularity model keeps no users');
-- the same model trained now has the same sections
CREATE TEMP TABLE v2 AS
SELECT popularity_fit(u, i, w, '{}') AS m
FROM (VALUES (1, 10, 2), (2, 10, 1), (1, 20, 1), (3, 30, 2), (NULL, 30, 1)) t(u, i, w);
SELECT is((SELECT model_info(m) - 'bytes' - 'rows' - 'null_rows' FROM v2),
          (SELECT model_info(pg_temp.as_model(b)::model) - 'bytes' - 'rows' - 'null_rows' FROM v1),
          'and the same summary as the same data trained in format 2');
SELECT is((SELECT pg_temp.as_model(b)::model::text FROM v1),
          (SELECT regexp_replace(m::text, '^(.{' || (2 + 2 * 40) || '}).{16}', '\1' || encode(pg_temp.i8(6), 'hex')) FROM v2),
          'byte for byte, once the row counts are the same');

-- a corrupt format-1 value is refused
SELECT throws_ok($$SELECT pg_temp.as_model(overlay(b PLACING pg_temp.i8(4000) FROM 89 FOR 8))::model FROM v1$$,
                 'XX001', NULL, 'format 1 with a section outside the value');

-- format 2 header (1-based): magic at byte 5, format 9, algorithm 11, image length 17, rows 41;
-- the directory from 73: kind, element, rows, offset, bytes (24 bytes each)
SELECT throws_ok($$SELECT pg_temp.as_model(overlay(decode(substr(m::text, 3), 'hex') PLACING pg_temp.i2(3) FROM 9 FOR 2))::model FROM v2$$,
                 '0A000', 'personalize.model format 3 is newer than this version of pg_personalize reads (format 2)',
                 'a newer format is a clear error');
SELECT throws_ok($$SELECT pg_temp.as_model(overlay(decode(substr(m::text, 3), 'hex') PLACING pg_temp.i2(99) FROM 11 FOR 2))::model FROM v2$$,
                 'XX001', 'invalid personalize.model value: unknown algorithm 99', 'an unknown algorithm');
SELECT throws_ok($$SELECT pg_temp.as_model(overlay(decode(substr(m::text, 3), 'hex') PLACING pg_temp.i8(1000000) FROM 81 FOR 8))::model FROM v2$$,
                 'XX001', 'invalid personalize.model value: section 1 lies outside the image', 'a section outside the image');
SELECT throws_ok($$SELECT pg_temp.as_model(overlay(decode(substr(m::text, 3), 'hex') PLACING pg_temp.i4(3) FROM 73 FOR 4))::model FROM v2$$,
                 'XX001', NULL, 'a directory that names one section twice, or misses options');
SELECT throws_ok($$SELECT pg_temp.as_model(overlay(decode(substr(m::text, 3), 'hex') PLACING pg_temp.i8(1) FROM 17 FOR 8))::model FROM v2$$,
                 'XX001', 'invalid personalize.model value: bad length', 'an image length that is not the value''s');

SELECT * FROM finish();
ROLLBACK;
