-- Every bad input to the embedding type gets its SQLSTATE and message.
BEGIN;
SET search_path = personalize, public;
SELECT plan(36);

-- 22P02 invalid_text_representation
SELECT throws_ok($$SELECT '1,2'::embedding$$, '22P02', 'invalid input syntax for type embedding: "1,2"', 'missing [');
SELECT throws_ok($$SELECT '[1,2'::embedding$$, '22P02', NULL, 'missing ]');
SELECT throws_ok($$SELECT '[1,,2]'::embedding$$, '22P02', NULL, 'empty element');
SELECT throws_ok($$SELECT '[1,2,]'::embedding$$, '22P02', NULL, 'trailing comma');
SELECT throws_ok($$SELECT '[a]'::embedding$$, '22P02', NULL, 'not a number');
SELECT throws_ok($$SELECT '[1 2]'::embedding$$, '22P02', NULL, 'missing comma');
SELECT throws_ok($$SELECT '[1] 2'::embedding$$, '22P02', NULL, 'junk after ]');
SELECT throws_ok($$SELECT ''::embedding$$, '22P02', NULL, 'empty string');

-- 22023 invalid_parameter_value: no dimensions, multi-dimensional arrays, bad typmods
SELECT throws_ok($$SELECT '[]'::embedding$$, '22023', 'embedding must have at least 1 dimension', 'empty []');
SELECT throws_ok($$SELECT '[ ]'::embedding$$, '22023', NULL, 'empty [ ]');
SELECT throws_ok($$SELECT '{}'::real[]::embedding$$, '22023', NULL, 'empty array');
SELECT throws_ok($$SELECT ARRAY[[1,2],[3,4]]::embedding$$, '22023', 'array must be one-dimensional', '2-D array');
SELECT throws_ok($$SELECT '[1]'::embedding(0)$$, '22023', 'dimensions for type embedding must be at least 1', 'typmod 0');
SELECT throws_ok($$SELECT '[1]'::embedding(1, 2)$$, '22023', 'invalid type modifier', 'two typmods');

-- 22000 data_exception: NaN and infinities, dimension mismatches
SELECT throws_ok($$SELECT '[NaN]'::embedding$$, '22000', 'NaN not allowed in embedding', 'NaN text');
SELECT throws_ok($$SELECT '[1,inf]'::embedding$$, '22000', 'infinite value not allowed in embedding', 'Inf text');
SELECT throws_ok($$SELECT '[-Infinity]'::embedding$$, '22000', NULL, '-Inf text');
SELECT throws_ok($$SELECT ARRAY['NaN']::real[]::embedding$$, '22000', NULL, 'NaN in real[]');
SELECT throws_ok($$SELECT ARRAY['-Infinity']::float8[]::embedding$$, '22000', NULL, '-Inf in float8[]');
SELECT throws_ok($$SELECT ARRAY['NaN']::numeric[]::embedding$$, '22000', NULL, 'NaN in numeric[]');
SELECT throws_ok($$SELECT '[1,2]'::embedding <-> '[1,2,3]'$$, '22000', 'different embedding dimensions 2 and 3', '<-> dims');
SELECT throws_ok($$SELECT '[1,2]'::embedding <#> '[1]'$$, '22000', NULL, '<#> dims');
SELECT throws_ok($$SELECT '[1,2]'::embedding <=> '[1]'$$, '22000', NULL, '<=> dims');
SELECT throws_ok($$SELECT '[1,2]'::embedding + '[1]'$$, '22000', NULL, '+ dims');
SELECT throws_ok($$SELECT avg(e) FROM (VALUES ('[1,2]'::embedding), ('[1]')) v(e)$$, '22000', NULL, 'avg dims');
SELECT throws_ok($$SELECT '[1,2]'::embedding(3)$$, '22000', 'expected 3 dimensions, not 2', 'typmod on input');
SELECT throws_ok($$SELECT ARRAY[1,2]::embedding(3)$$, '22000', NULL, 'typmod on array cast');
SELECT throws_ok($$SELECT '[1,2]'::embedding::embedding(3)$$, '22000', NULL, 'typmod on cast');

-- 22004 null_value_not_allowed
SELECT throws_ok($$SELECT ARRAY[1,NULL]::embedding$$, '22004', 'array must not contain nulls', 'NULL element');

-- 22003 numeric_value_out_of_range
SELECT throws_ok($$SELECT '[1e39]'::embedding$$, '22003', '"1e39" is out of range for type embedding', 'overflow text');
SELECT throws_ok($$SELECT '[1e-50]'::embedding$$, '22003', NULL, 'underflow text');
SELECT throws_ok($$SELECT ARRAY[1e300]::float8[]::embedding$$, '22003', NULL, 'overflow float8[]');
SELECT throws_ok($$SELECT '[3e38]'::embedding + '[3e38]'$$, '22003', NULL, 'overflow in +');
SELECT throws_ok($$SELECT sum(e) FROM (VALUES ('[3e38]'::embedding), ('[3e38]')) v(e)$$, '22003', NULL, 'overflow in sum');

-- 54000 program_limit_exceeded
SELECT throws_ok($$SELECT array_fill(1, ARRAY[16001])::embedding$$, '54000',
                 'embedding cannot have more than 16000 dimensions', '16001 dimensions');
SELECT throws_ok($$SELECT '[1]'::embedding(16001)$$, '54000', NULL, 'typmod 16001');

SELECT * FROM finish();
ROLLBACK;
