-- Bad input to experiments and statistics: every case gets its SQLSTATE and message.
BEGIN;
SET search_path = personalize, public;
SELECT plan(44);

-- create_experiment
SELECT throws_ok($$SELECT create_experiment('e', '{}')$$, '22023', 'experiment "e" needs at least 2 arms, got none', 'empty arms');
SELECT throws_ok($$SELECT create_experiment('e', NULL)$$, '22023', NULL, 'NULL arms');
SELECT throws_ok($$SELECT create_experiment('e', '{a}')$$, '22023', 'experiment "e" needs at least 2 arms, got 1', 'one arm');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', '{1,2,3}')$$, '22023', 'arms and weights have different lengths 2 and 3', 'arms/weights length mismatch');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', '{1,-1}')$$, '22023', 'weights must be finite and non-negative, not {1,-1}', 'negative weight');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', '{1,NaN}')$$, '22023', NULL, 'NaN weight');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', '{1,Infinity}')$$, '22023', NULL, 'infinite weight');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', '{1,NULL}')$$, '22023', NULL, 'NULL weight');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', '{0,0}')$$, '22023', 'at least one weight must be positive', 'all weights zero');
SELECT throws_ok($$SELECT create_experiment('e', '{a,a}')$$, '22023', 'arm names must be distinct', 'duplicate arms');
SELECT throws_ok($$SELECT create_experiment('e', '{a,NULL}')$$, '22023', 'arm names must not be NULL or empty', 'NULL arm');
SELECT throws_ok($$SELECT create_experiment('e', '{{a,b},{c,d}}')$$, '2202E', NULL, '2-D arms');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', control => 'z')$$, '22023', 'control arm "z" is not one of the arms {a,b}', 'unknown control');
SELECT throws_ok($$SELECT create_experiment('', '{a,b}')$$, '22023', 'experiment name must not be empty', 'empty name');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}', confidence => 1)$$, '22023', NULL, 'confidence 1');
SELECT lives_ok($$SELECT create_experiment('e', '{a,b}')$$, 'a valid experiment');
SELECT throws_ok($$SELECT create_experiment('e', '{a,b}')$$, '42710', 'experiment "e" already exists', 'duplicate experiment');

-- assign, log_outcome and plain INSERTs
SELECT throws_ok($$SELECT assign('nope', 1)$$, '42704', 'experiment "nope" does not exist', 'assign: unknown experiment');
SELECT throws_ok($$SELECT assign('e', NULL)$$, '22004', NULL, 'assign: NULL unit');
SELECT throws_ok($$SELECT log_outcome('nope', 1, 'm')$$, '42704', 'experiment "nope" does not exist', 'log_outcome: unknown experiment');
SELECT throws_ok($$SELECT log_outcome('e', 1, 'm', 'NaN')$$, '22023', 'outcome value must be finite, not NaN', 'log_outcome: NaN');
SELECT throws_ok($$SELECT log_outcome('e', 1, NULL)$$, '22004', NULL, 'log_outcome: NULL metric');
SELECT throws_ok($$INSERT INTO assignments (experiment, unit_id, arm) VALUES ('e', 1, 'zz')$$, '23503', NULL, 'INSERT: unknown arm');
SELECT throws_ok($$INSERT INTO outcomes (experiment, unit_id, metric, value) VALUES ('nope', 1, 'm', 1)$$, '23503', NULL, 'INSERT: unknown experiment');
SELECT throws_ok($$INSERT INTO outcomes (experiment, unit_id, metric, value) VALUES ('e', 1, 'm', 'Infinity')$$, '23514', NULL, 'INSERT: infinite value');
SELECT lives_ok($$SELECT assign('e', 1), assign('e', 2), log_outcome('e', 1, 'm', 3)$$, 'assign and log');
SELECT throws_ok($$INSERT INTO assignments (experiment, unit_id, arm) VALUES ('e', 1, 'a')$$, '23505', NULL, 'a unit has one arm');

-- segment_effects and cuped_results
SELECT throws_ok($$SELECT * FROM segment_effects('nope', 'm', 'SELECT 1, 2')$$, '42704', 'experiment "nope" does not exist', 'segments: unknown experiment');
SELECT throws_ok($$SELECT * FROM segment_effects('e', 'nope', 'SELECT 1, 2')$$, '42704', 'metric "nope" has no outcomes in experiment "e"', 'segments: unknown metric');
SELECT throws_ok($$SELECT * FROM segment_effects('e', 'm', 'no_such_table')$$, '42P01', 'segment relation "no_such_table" does not exist', 'segments: unknown relation');
SELECT throws_ok($$SELECT * FROM segment_effects('e', 'm', '')$$, '22023', NULL, 'segments: empty');
SELECT throws_ok($$SELECT * FROM segment_effects('e', 'm', 'VALUES (1, ''x''), (1, ''y'')')$$, '21000', 'segment query returns more than one row for unit 1', 'segments: duplicate unit');
SELECT throws_ok($$SELECT * FROM cuped_results('e', 'm', 'no_such_table')$$, '42P01', 'covariate relation "no_such_table" does not exist', 'cuped: unknown relation');
SELECT throws_ok($$SELECT * FROM cuped_results('nope', 'm', 'SELECT 1, 2')$$, '42704', NULL, 'cuped: unknown experiment');

-- statistics
SELECT throws_ok($$SELECT norm_ppf(-0.1)$$, '22023', 'probability must be between 0 and 1, not -0.1', 'norm_ppf: p < 0');
SELECT throws_ok($$SELECT t_cdf(1, -2)$$, '22023', 'degrees of freedom must be positive, not -2', 't_cdf: negative df');
SELECT throws_ok($$SELECT chi2_isf(0.5, 'NaN')$$, '22023', NULL, 'chi2_isf: NaN df');
SELECT throws_ok($$SELECT p_adjust('{0.1}', 'sidak')$$, '22023', 'unknown p-value adjustment method "sidak"', 'p_adjust: unknown method');
SELECT throws_ok($$SELECT p_adjust('{NaN}', 'bh')$$, '22023', NULL, 'p_adjust: NaN');
SELECT throws_ok($$SELECT p_adjust('{{0.1},{0.2}}', 'bh')$$, '2202E', NULL, 'p_adjust: 2-D');
SELECT throws_ok($$SELECT sample_size(0, 0.1)$$, '22023', 'baseline_rate must be between 0 and 1 (exclusive), not 0', 'sample_size: baseline 0');
SELECT throws_ok($$SELECT sample_size(0.5, 2)$$, '22023', NULL, 'sample_size: treated rate above 1');
SELECT throws_ok($$SELECT sample_size(0.05, 0.1, power => 0.01)$$, '22023', 'power must be between alpha and 1 (exclusive), not 0.01', 'sample_size: power below alpha');
SELECT throws_ok($$SELECT power(0.05, 0.1, 0)$$, '22023', 'n_per_arm must be positive and finite, not 0', 'power: n 0');

SELECT * FROM finish();
ROLLBACK;
