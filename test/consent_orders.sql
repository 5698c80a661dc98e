-- has_consent() and the policy protect() writes agree on the same data: one
-- subject per sequence of up to four decisions (grant or withdrawal, two
-- purposes), i.e. every order, with the subjects' decisions interleaved; read
-- by a hashed scan and by index probes, on a bigint and an integer column,
-- with and without an exempt role. The reference is the last decision of each
-- sequence, computed from the sequences themselves.
BEGIN;
SET client_min_messages = warning;
SELECT plan(40);

CREATE SCHEMA co;
-- decision d of a subject: 0 grant p1, 1 withdraw p1, 2 grant p2, 3 withdraw p2
CREATE TABLE co.decisions AS
WITH seqs AS (
  SELECT len, code, (SELECT coalesce(sum(4 ^ l), 0) FROM generate_series(0, len - 1) l)::bigint + code + 1 AS subject
  FROM generate_series(0, 4) len, LATERAL generate_series(0, (4 ^ len)::int - 1) code)
SELECT s.subject, i AS pos, CASE WHEN (s.code / (4 ^ i)::int) % 4 < 2 THEN 'p1' ELSE 'p2' END AS purpose,
       (s.code / (4 ^ i)::int) % 2 = 0 AS granted
FROM seqs s, LATERAL generate_series(0, s.len - 1) i;
CREATE TABLE co.subjects AS SELECT generate_series(1, 341)::bigint AS subject;
SELECT is((SELECT count(DISTINCT subject) FROM co.decisions), 340::bigint, '340 subjects with 1 to 4 decisions (and one never asked)');
SELECT is((SELECT count(*) FROM (SELECT DISTINCT string_agg(purpose || granted, ',' ORDER BY pos) FROM co.decisions GROUP BY subject) d),
  340::bigint, 'each with its own order');

-- recorded interleaved: a subject's decisions keep their order, other subjects' fall between them
DO $$
DECLARE d record;
BEGIN
  FOR d IN SELECT * FROM co.decisions ORDER BY pos * 1000 + ('x' || substr(md5(subject::text), 1, 6))::bit(24)::int % 1500, subject LOOP
    PERFORM personalize.set_consent(d.subject, d.purpose, d.granted, 'order test');
  END LOOP;
END $$;
SELECT ok((SELECT count(*) FROM (SELECT subject_id AS subject, lag(subject_id) OVER (ORDER BY seq) AS prev FROM personalize.consents
            WHERE source = 'order test') x
           WHERE subject <> prev) > 500, 'decisions of different subjects are interleaved');

-- other subjects' grants (not in the tables): enough that the policy's subquery
-- cannot be hashed in 64kB of memory, so both plans can be checked
SELECT count(personalize.set_consent(s, p, true, 'filler')) FROM generate_series(100001, 106000) s, (VALUES ('p1'), ('p2')) v(p);

CREATE VIEW co.expected WITH (security_invoker = true) AS
SELECT s.subject, p.purpose,
       coalesce((SELECT d.granted FROM co.decisions d WHERE d.subject = s.subject AND d.purpose = p.purpose
                 ORDER BY d.pos DESC LIMIT 1), false) AS granted
FROM co.subjects s, (VALUES ('p1'), ('p2')) p(purpose);
SELECT ok((SELECT count(*) FILTER (WHERE granted) > 100 AND count(*) FILTER (WHERE NOT granted) > 100 FROM co.expected),
  'the reference has many grants and many refusals');

SELECT is((SELECT count(*) FROM co.expected e WHERE personalize.has_consent(e.subject, e.purpose) IS DISTINCT FROM e.granted),
  0::bigint, 'has_consent: the last decision of every order decides');

-- protected tables: p1 on a bigint column with an exempt role, p2 on an integer column without
CREATE ROLE co_reader;
CREATE ROLE co_exempt;
SELECT personalize.grant_analyst('co_reader'), personalize.grant_analyst('co_exempt');
CREATE TABLE co.p1 (subject bigint, payload int);
CREATE TABLE co.p2 (subject integer, payload int);
INSERT INTO co.p1 SELECT subject, k FROM co.subjects, generate_series(1, 2) k;
INSERT INTO co.p2 SELECT subject, k FROM co.subjects, generate_series(1, 2) k;
INSERT INTO co.p1 VALUES (NULL, 0);
INSERT INTO co.p2 VALUES (NULL, 0);
CREATE INDEX ON co.p1 (subject);
CREATE INDEX ON co.p2 (subject);
ANALYZE co.p1, co.p2, personalize.consents;
SELECT personalize.protect('co.p1', 'subject', 'p1', 'co_exempt');
SELECT personalize.protect('co.p2', 'subject', 'p2');

-- the plan a reader gets (EXPLAIN as the caller)
CREATE FUNCTION co.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text; p text := '';
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP p := p || l || E'\n'; END LOOP;
  RETURN p;
END $$;
-- per subject, through an index probe of the table for each subject
CREATE VIEW co.visible_by_probe WITH (security_invoker = true) AS
SELECT s.subject, (SELECT count(*) FROM co.p1 t WHERE t.subject = s.subject) > 0 AS p1,
       (SELECT count(*) FROM co.p2 t WHERE t.subject = s.subject) > 0 AS p2
FROM co.subjects s;

GRANT USAGE ON SCHEMA co TO co_reader, co_exempt;
GRANT SELECT ON ALL TABLES IN SCHEMA co TO co_reader, co_exempt;

-- hashed: the policy's subquery is hashed once per statement (default memory);
-- otherwise probed per row through the consent index (too little memory to hash)
CREATE FUNCTION co.check_agreement(label text, hashed boolean) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  IF NOT hashed THEN
    SET LOCAL work_mem = '64kB';
    SET LOCAL hash_mem_multiplier = 1;
  END IF;
  SET LOCAL ROLE co_reader;
  RETURN NEXT ok(CASE WHEN hashed
                      THEN co.plan_of('SELECT * FROM co.p1') ~ 'hashed SubPlan' AND co.plan_of('SELECT * FROM co.p2') ~ 'hashed SubPlan'
                      ELSE co.plan_of('SELECT * FROM co.p1') !~ 'hashed' AND co.plan_of('SELECT * FROM co.p2') !~ 'hashed'
                           AND co.plan_of('SELECT * FROM co.p1') ~ 'Index Cond: \(\(subject_id = p1.subject\)'
                           AND co.plan_of('SELECT * FROM co.p2') ~ 'Index Cond: \(\(subject_id = p2.subject\)' END,
    label || ': the reader''s plans ' || CASE WHEN hashed THEN 'hash the consented subjects' ELSE 'probe the consent index per row' END);
  RETURN NEXT set_eq('SELECT DISTINCT subject FROM co.p1', 'SELECT subject FROM co.expected WHERE purpose = ''p1'' AND granted',
    label || ': a scan of the bigint table shows exactly the subjects whose last p1 decision is a grant');
  RETURN NEXT set_eq('SELECT DISTINCT subject::bigint FROM co.p2', 'SELECT subject FROM co.expected WHERE purpose = ''p2'' AND granted',
    label || ': a scan of the integer table, the same for p2');
  RETURN NEXT is((SELECT count(*) FROM co.visible_by_probe v JOIN co.expected e USING (subject)
                  WHERE (e.purpose = 'p1' AND v.p1 IS DISTINCT FROM e.granted) OR (e.purpose = 'p2' AND v.p2 IS DISTINCT FROM e.granted)),
    0::bigint, label || ': index probes subject by subject agree');
  RETURN NEXT is((SELECT count(*) FROM co.subjects s, (VALUES ('p1'), ('p2')) p(purpose)
                  WHERE personalize.has_consent(s.subject, p.purpose) IS DISTINCT FROM
                        CASE p.purpose WHEN 'p1' THEN EXISTS (SELECT FROM co.p1 t WHERE t.subject = s.subject)
                                       ELSE EXISTS (SELECT FROM co.p2 t WHERE t.subject = s.subject) END),
    0::bigint, label || ': has_consent() equals the policy for every subject and purpose, in the reader''s session');
  RETURN NEXT is((SELECT count(*) FROM personalize.current_consent c
                  WHERE c.granted IS DISTINCT FROM personalize.has_consent(c.subject_id, c.purpose)), 0::bigint,
    label || ': current_consent agrees');
  RESET ROLE;
  SET LOCAL ROLE co_exempt;
  RETURN NEXT is((SELECT count(*) FROM co.p1), 683::bigint, label || ': the exempt role sees every row of its table');
  RETURN NEXT set_eq('SELECT DISTINCT subject::bigint FROM co.p2', 'SELECT subject FROM co.expected WHERE purpose = ''p2'' AND granted',
    label || ': and only consented rows of a table it is not exempt from');
  RESET ROLE;
  RESET work_mem;
  RESET hash_mem_multiplier;
END $$;

SELECT * FROM co.check_agreement('all orders', true);
SELECT * FROM co.check_agreement('all orders', false);

-- one more decision for everybody, backdated: seq, not recorded_at, decides for both
INSERT INTO personalize.consents (subject_id, purpose, granted, recorded_at, source)
SELECT subject, CASE WHEN subject % 3 = 0 THEN 'p2' ELSE 'p1' END, subject % 2 = 0, timestamptz '2000-01-01', 'backdated import'
FROM co.subjects;
INSERT INTO co.decisions SELECT subject, 4, CASE WHEN subject % 3 = 0 THEN 'p2' ELSE 'p1' END, subject % 2 = 0 FROM co.subjects;
SELECT is((SELECT count(*) FROM co.expected e WHERE personalize.has_consent(e.subject, e.purpose) IS DISTINCT FROM e.granted),
  0::bigint, 'backdated decisions: has_consent follows the history''s order');
SELECT * FROM co.check_agreement('backdated', true);
SELECT * FROM co.check_agreement('backdated', false);

SELECT is(personalize.has_consent(NULL, 'p1'), NULL, 'NULL subject: NULL');
SET LOCAL ROLE co_reader;
SELECT is((SELECT count(*) FROM co.p1 WHERE subject IS NULL), 0::bigint, 'and the policy hides a NULL subject''s row');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
