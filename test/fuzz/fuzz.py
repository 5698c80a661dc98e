#!/usr/bin/python3
"""Mutation fuzzer for pg_personalize: every input function and every function
that reads a stored model, fed with mutations of valid values.

Valid values come from SQL (models trained on a small generated table, states
of the aggregates, send/text forms of embeddings), so the fuzzer does not know
any layout beyond the varlena length word. Each case is a deterministic
function of (--seed, case number): a target is drawn, a valid value of its
kind is mutated (bit flips, interesting integers and floats at aligned
offsets, truncation, extension, splices with other values, copies of 8-byte
words such as section offsets onto counts, repeated text for huge element
counts), and the value is sent to the server as a parameter, in text or in
binary form, through one connection with prepared statements.

A case passes when the statement succeeds or fails with an SQLSTATE other
than XX000 (an internal error from elog: a corrupt value deserves
ERRCODE_DATA_CORRUPTED or another real code). A lost connection is a server
crash. Failing inputs are written to --out and can be replayed with --case.

    PGHOST=... /usr/bin/python3 test/fuzz/fuzz.py --cases 20000 [--seed 1] [--case N]

The server needs the test-only module of test/fuzz/Makefile installed (the
leader's path for partial training states); bench/fuzz.sh and
test/sanitize.sh install it.
"""
import argparse
import os
import random
import select
import struct
import sys
import time
from collections import Counter, defaultdict

import psycopg
from psycopg import pq

DB = "pg_personalize_fuzz"
HANG_SECONDS = 30               # statement_timeout is 2 s

SETUP = r"""
CREATE EXTENSION pg_personalize;
CREATE SCHEMA fuzz;
-- 60 users x 8 interactions over 80 items, and a tiny table for option cases
CREATE TABLE fuzz.events AS
  SELECT u::bigint AS user_id, ((u * 7 + j * 13) % 80 + 1000)::bigint AS item_id,
         ((u + j) % 5 + 1)::real AS weight
  FROM generate_series(1, 60) u, generate_series(1, 8) j;
CREATE TABLE fuzz.tiny AS SELECT * FROM fuzz.events WHERE user_id <= 6;
CREATE TABLE fuzz.labels AS
  SELECT (i % 3 = 0) AS label, ((i * 37) % 101) / 100.0::float8 AS score FROM generate_series(1, 300) i;

-- aggregate states as bytea: the transition functions without their final function
CREATE AGGREGATE fuzz.popularity_state(bigint, bigint, real, jsonb) (
  SFUNC = personalize.popularity_transfn, STYPE = bytea);
CREATE AGGREGATE fuzz.popularity_merge(bytea) (
  SFUNC = personalize.popularity_combine, STYPE = bytea, FINALFUNC = personalize.popularity_final);
CREATE AGGREGATE fuzz.classification_state(boolean, double precision) (
  SFUNC = personalize.classification_accum, STYPE = bytea);
CREATE AGGREGATE fuzz.classification_merge(bytea) (
  SFUNC = personalize.classification_combine, STYPE = bytea,
  FINALFUNC = personalize.classification_final, FINALFUNC_MODIFY = READ_WRITE);
-- partial states of item-kNN and ALS as parallel workers ship them, and the leader's
-- path for them (deserialize, combine, final) through the test-only module
CREATE AGGREGATE fuzz.interactions_state(bigint, bigint, real, jsonb) (
  SFUNC = personalize.interactions_transfn, STYPE = internal, FINALFUNC = personalize.interactions_serialize);
CREATE FUNCTION fuzz.interactions_fit(bytea, text) RETURNS personalize.model
  AS '$libdir/personalize_fuzz', 'fuzz_interactions' LANGUAGE C STRICT;
CREATE AGGREGATE fuzz.embedding_merge(double precision[]) (
  SFUNC = personalize.embedding_combine, STYPE = double precision[], FINALFUNC = personalize.embedding_avg);
-- classifiers (issue 12): a table to train and score on, the logistic pass's state without its final
-- function and its leader path (combine, final), the uplift sample's state and its merge
CREATE TABLE fuzz.people AS
  SELECT i AS id, (i % 7) / 2.0 AS a, ((i * 13) % 11)::float8 AS b, (ARRAY['x', 'y', 'z'])[i % 3 + 1] AS c,
         ((i * 31) % 7 < 3) AS label, i % 2 = 0 AS treated FROM generate_series(1, 300) i;
CREATE AGGREGATE fuzz.logistic_state(bytea, "any", "any", VARIADIC "any") (
  SFUNC = personalize.logistic_pass_transfn, STYPE = double precision[]);
CREATE AGGREGATE fuzz.logistic_merge(double precision[]) (
  SFUNC = personalize.logistic_pass_combine, STYPE = double precision[], FINALFUNC = personalize.logistic_pass_final);
CREATE AGGREGATE fuzz.uplift_state(boolean, boolean, double precision) (
  SFUNC = personalize.uplift_accum, STYPE = bytea);
CREATE AGGREGATE fuzz.uplift_merge(bytea) (
  SFUNC = personalize.uplift_combine, STYPE = bytea, FINALFUNC = personalize.uplift_sample_final);
"""

# Functions that read the stored model named 'fuzz', each run in its own
# subtransaction; the model update is rolled back at the end of the case.
READERS = [
    "PERFORM count(*) FROM personalize.recommend('fuzz', p_user, p_k, true, NULL, p_items)",
    "PERFORM count(*) FROM personalize.recommend('fuzz', p_user, p_k, false, p_items, NULL)",
    "PERFORM count(*) FROM personalize.recommend('fuzz', NULL, p_k)",
    "PERFORM count(*) FROM personalize.similar_items('fuzz', p_item, p_k)",
    "PERFORM personalize.score('fuzz', p_user, p_item)",
    "PERFORM personalize.fold_in('fuzz', p_items, p_weights)",
    "PERFORM count(*) FROM personalize.recommend_for('fuzz', p_items, p_weights, p_k)",
    "PERFORM count(*) FROM personalize.recommend_all('fuzz', p_k)",
    "PERFORM count(*) FROM personalize.user_embeddings('fuzz')",
    "PERFORM count(*) FROM personalize.item_embeddings('fuzz')",
    "PERFORM personalize.model_info(personalize.model_without_user(m, p_user))",
]


def serve_function():
    calls = "\n".join(
        f"""    BEGIN
      {call};
      result := result || 'ok ';
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
      result := result || state || CASE WHEN state = 'XX000' THEN '{{' || msg || '}}' ELSE '' END || ' ';
    END;""" for call in READERS)
    return f"""
CREATE FUNCTION fuzz.serve(m personalize.model, p_user bigint, p_item bigint, p_k integer,
                           p_items bigint[], p_weights real[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  result text := '';
  state text;
  msg text;
BEGIN
  BEGIN
    PERFORM personalize.model_import('fuzz', m, true);   -- validated where every stored model is
{calls}
    RAISE SQLSTATE 'PZFZ0';
  EXCEPTION WHEN SQLSTATE 'PZFZ0' THEN
    NULL;   -- roll the model back
  END;
  RETURN result;
END $$;
"""


# ---------- mutations ----------

INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095, 4096,
               16000, 16001, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               1 << 32, 1 << 40, 1 << 48, 1 << 60, 1 << 61, 1 << 62, 1 << 63, (1 << 63) - 1, (1 << 64) - 1,
               (1 << 64) - 2, (1 << 64) - 8, (1 << 64) - (1 << 31), (1 << 64) - (1 << 62)]
FLOATS = [0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 3.4028235e38, -3.4028235e38,
          1e-45, 1.1754944e-38, 1e30, 0.5, 2.0]
TOKENS = ["[", "]", ",", "{", "}", ":", '"', " ", "\t", "\n", "-", "+", ".", "e", "E", "0", "1", "9", "nan",
          "NaN", "inf", "-inf", "Infinity", "1e39", "-1e39", "1e-50", "3.4028236e38", "0x10", "null", "true",
          "false", "1e308", "1e309", "-1", "99999999999999999999", "0.000001", "\\", "\\u0000", "\u00e9",
          '"factors"', '"neighbors"', '"iterations"', '"threads"', '"seed"', '"alpha"', '"shrinkage"',
          '"regularization"', '"cg_steps"', '"calculate_loss"', "[]", "{}", "1024", "1025", "10000", "10001",
          "16", "17", "0", "-0", "1e6", "1000001", "9007199254740991", "9007199254740993"]


def set_int(buf, off, width, value):
    buf[off:off + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def get_int(buf, off, width):
    return int.from_bytes(buf[off:off + width], "little")


def aligned(rng, n, width):
    off = rng.randrange(0, max(n - width + 1, 1))
    return off - off % width if rng.random() < 0.9 else off


def mutate_bytes(rng, data, others, varlena):
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
        n = len(buf)
        op = rng.randrange(12)
        if n == 0:
            op = 7
        if op == 0:                                   # bit flips
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(n)
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:                                 # a byte
            buf[rng.randrange(n)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op in (2, 3):                            # an interesting integer
            width = rng.choice((2, 4, 4, 8, 8))
            if n >= width:
                value = rng.choice(INTERESTING + [n, n + 8, n - 8, n // 2, n * 2, rng.randrange(n) & ~7])
                if rng.random() < 0.3:
                    value = -value
                set_int(buf, aligned(rng, n, width), width, value)
        elif op == 4:                                 # small arithmetic
            width = rng.choice((4, 8))
            if n >= width:
                off = aligned(rng, n, width)
                set_int(buf, off, width, get_int(buf, off, width) + rng.choice((-16, -8, -4, -1, 1, 4, 8, 16)))
        elif op == 5:                                 # a special float
            if n >= 4:
                off = aligned(rng, n, 4)
                if rng.random() < 0.7:
                    buf[off:off + 4] = struct.pack("<f", rng.choice(FLOATS))
                elif n >= off + 8:
                    buf[off:off + 8] = struct.pack("<d", rng.choice(FLOATS))
        elif op == 6:                                 # truncate
            del buf[rng.randrange(n):]
        elif op == 7:                                 # extend
            buf += bytes(rng.randrange(256) if rng.random() < 0.5 else 0 for _ in range(rng.choice((1, 4, 8, 64))))
        elif op == 8:                                 # delete a range
            a = rng.randrange(n)
            del buf[a:a + rng.choice((1, 4, 8, 16, 64))]
        elif op == 9:                                 # duplicate a range
            a = rng.randrange(n)
            buf[a:a] = buf[a:a + rng.choice((4, 8, 16, 64))]
        elif op == 10:                                # splice with another valid value
            other = rng.choice(others)
            if other:
                cut = rng.randrange(n)
                buf = buf[:cut] + bytearray(other[rng.randrange(len(other)) if rng.random() < 0.3 else cut:])
        else:                                         # copy an 8-byte word (offsets onto counts)
            if n >= 16:
                a, b = aligned(rng, n, 8), aligned(rng, n, 8)
                buf[b:b + 8] = buf[a:a + 8]
    if varlena and len(buf) >= 4 and rng.random() < 0.7:
        set_int(buf, 0, 4, len(buf) << 2)             # keep the length word consistent: reach deeper
    return bytes(buf)


def mutate_text(rng, text, others):
    s = text
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        n = len(s)
        op = rng.randrange(8)
        if n == 0:
            op = 1
        elif op == 6 and n >= 100000:                 # long enough already
            op = 0
        if op == 0:
            a = rng.randrange(n)
            s = s[:a] + s[a + rng.randint(1, 4):]
        elif op == 1:
            a = rng.randrange(n + 1)
            s = s[:a] + rng.choice(TOKENS) + s[a:]
        elif op == 2:
            a = rng.randrange(n)
            s = s[:a] + rng.choice(TOKENS) + s[a + 1:]
        elif op == 3:
            a = rng.randrange(n)
            b = rng.randrange(a, n + 1)
            s = s[:b] + s[a:b] + s[b:]
        elif op == 4:
            s = s[:rng.randrange(n)]
        elif op == 5:
            other = rng.choice(others)
            s = s[:rng.randrange(n)] + other[rng.randrange(len(other) + 1):]
        elif op == 6:                                 # huge counts: a segment repeated
            a = rng.randrange(n)
            b = min(n, a + rng.randint(1, 6))
            s = s[:b] + s[a:b] * rng.choice((100, 5000, 16001, 40000)) + s[b:]
        else:
            a = rng.randrange(n)
            s = s[:a] + s[a].swapcase() + s[a + 1:]
    return s


def float8_array(rng, seeds):
    """A float8[] literal: a mutated valid state, or one built from interesting parts."""
    if rng.random() < 0.5:
        values = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(5)
            if op == 0 and values:
                values[rng.randrange(len(values))] = rng.choice(
                    ["NaN", "Infinity", "-Infinity", "NULL", "0", "-1", "1e308", "-1e308", "4.9e-324", "1e300",
                     "9007199254740993", "-9e18", "16001", "0.5"])
            elif op == 1 and values:
                del values[rng.randrange(len(values)):]
            elif op == 2:
                values.append(rng.choice(["0", "1", "2.5", "NaN"]))
            elif op == 3 and values:
                values = values * min(rng.choice((2, 3, 1000, 17000)), 20000 // len(values) + 1)
            else:
                values = values[:1]
        body = ",".join(values)
    else:
        body = ",".join(rng.choice(["0", "1", "-1", "3", "NaN", "1e308", "Infinity", "NULL", "2", "0.25"])
                        for _ in range(rng.choice((0, 1, 2, 3, 5, 9, 10))))
    shape = rng.random()
    if shape < 0.08:
        return "{{%s},{%s}}" % (body, body)         # two dimensions
    if shape < 0.14:
        return "[0:%d]={%s}" % (max(body.count(","), 0), body)   # lower bound 0
    return "{%s}" % body


def format1_model():
    """A format-1 value (0.1.0's frozen layout, read by conversion), as test/models_format.sql
    assembles it: a popularity model of items 10, 20, 30. Later formats come from SQL."""
    offsets = [152, 0, 160, 184] + [0] * 7
    return (struct.pack("<iihhiiiiiqqqd", 196 << 2, 0x504D4F44, 1, 1, 0, 0, 0, 3, 0, 0, 6, 1, float("nan"))
            + struct.pack("<11q", *offsets) + b"{}\0" + bytes(5) + struct.pack("<3q3f", 10, 20, 30, 3, 1, 2))


# ---------- the driver ----------

class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.stats = defaultdict(Counter)
        self.problems = []
        os.makedirs(args.out, exist_ok=True)

    def connect(self, dbname):
        for _ in range(60):
            try:
                return psycopg.connect(dbname=dbname, autocommit=True)
            except psycopg.OperationalError:
                time.sleep(1)
        raise SystemExit("fuzz: cannot connect to the server")

    def setup(self):
        with self.connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DB}")
        conn = self.connect(DB)
        conn.execute(SETUP)
        conn.execute(serve_function())
        one = lambda sql: conn.execute(sql).fetchone()[0]
        fit = "SELECT personalize.model_send(personalize.{}(user_id, item_id, weight, '{}')) FROM fuzz.{}"
        self.models = [bytes(one(fit.format(*spec))) for spec in [
            ("popularity_fit", "{}", "events"),
            ("itemknn_fit", '{"neighbors": 20}', "events"),
            ("als_fit", '{"factors": 16, "iterations": 2, "seed": 7}', "events"),
            ("itemknn_fit", '{"neighbors": 2, "shrinkage": 1}', "tiny"),
            ("als_fit", '{"factors": 2, "iterations": 1, "seed": 3}', "tiny"),
            ("bpr_fit", '{"factors": 4, "iterations": 2, "seed": 3, "threads": 1}', "events"),
            ("dp_als_fit", '{"factors": 4, "iterations": 2, "epsilon": 5}', "events"),
            ("dp_popularity_fit", '{"epsilon": 1000, "contributions": 5}', "events"),
        ]] + [bytes(one(sql)) for sql in [
            # issue 13's models with their own sections: features, contexts, lists, segments
            "SELECT personalize.model_send(personalize.hybrid_fit(user_id, item_id, weight, "
            "CASE WHEN user_id % 2 = 0 THEN 'day' END, '{\"factors\": 4, \"iterations\": 2, \"threads\": 1, "
            "\"item_features\": \"SELECT DISTINCT item_id, ''genre:'' || item_id % 3 AS feature FROM fuzz.events\"}')) "
            "FROM fuzz.events",
            "SELECT personalize.model_send(personalize.editorial_fit(item_id, pos::int, "
            "CASE WHEN item_id % 2 = 0 THEN 'young' END, '{}')) FROM (SELECT item_id, row_number() OVER (ORDER BY item_id) "
            "AS pos FROM (SELECT DISTINCT item_id FROM fuzz.events LIMIT 20) d) l",
        ]] + [format1_model()]
        conn.execute("SELECT personalize.model_import('fuzz', "
                     "personalize.als_fit(user_id, item_id, weight, '{\"factors\": 2}'), true) FROM fuzz.tiny")
        conn.execute("""CREATE TABLE fuzz.classifiers AS
          SELECT 1 AS id, personalize.classifier_fit('logistic', 'fuzz.people',
                 '{"label": "label", "features": ["a", "b", "c"], "l2": 0.1}') AS m
          UNION ALL SELECT 2, personalize.classifier_fit('logistic', 'fuzz.people',
                 '{"label": "label", "features": ["a", "b"], "standardize": true}')
          UNION ALL SELECT 3, personalize.classifier_fit('uplift', 'fuzz.people',
                 '{"label": "label", "treatment": "treated", "features": ["a", "c"], "l2": 0.1}')""")
        self.classifiers = [bytes(one(f"SELECT personalize.model_send(m) FROM fuzz.classifiers WHERE id = {i}"))
                            for i in (1, 2, 3)]
        self.models += self.classifiers
        self.specs = [bytes(one(f"SELECT personalize.logistic_spec(m) FROM fuzz.classifiers WHERE id = {i}"))
                      for i in (1, 2)]
        spec = "(SELECT personalize.logistic_spec(m) FROM fuzz.classifiers WHERE id = {})"
        self.logistic_states = [
            one("SELECT fuzz.logistic_state(" + spec.format(1) + ", label, 1.0, a, b, c)::text FROM fuzz.people"),
            one("SELECT fuzz.logistic_state(" + spec.format(2) + ", label, 1.0, a, b)::text FROM fuzz.people "
                "WHERE id <= 100")]
        self.logistic_states = [x.strip("{}").split(",") for x in self.logistic_states]
        self.uplift_states = [bytes(one("SELECT fuzz.uplift_state(label, treated, a) FROM fuzz.people")),
                              bytes(one("SELECT fuzz.uplift_state(label, treated, round(b)) FROM fuzz.people WHERE id < 50"))]
        self.embedding_texts = ["[1,2,3]", "[0]", " [ -0.5 , 1e-45 , 3.4028235e38 ] ", "[1e-38,2,-3,4]",
                                "[" + ",".join(str(i % 7) for i in range(300)) + "]"]
        self.embeddings = [bytes(one(f"SELECT personalize.embedding_send('{t}')")) for t in self.embedding_texts]
        self.popularity_states = [bytes(one("SELECT fuzz.popularity_state(user_id, item_id, weight, '{}') "
                                            f"FROM fuzz.{t}")) for t in ("events", "tiny")]
        self.interaction_states = [bytes(one(f"SELECT fuzz.interactions_state(user_id, item_id, weight, '{o}') "
                                             f"FROM fuzz.{t}")) for o, t in
                                   [('{"neighbors": 3}', "tiny"), ('{"factors": 4, "iterations": 1}', "tiny"),
                                    ('{}', "events")]]
        self.samples = [bytes(one("SELECT fuzz.classification_state(label, score) FROM fuzz.labels")),
                        bytes(one("SELECT personalize.score_sample(label, score) FROM fuzz.labels WHERE score > 0.7"))]
        self.float8_states = [
            one("SELECT personalize.embedding_accum(personalize.embedding_accum(NULL, '[1,2,3]'), '[4,5,6]')::text"),
            one("SELECT (SELECT personalize.moments(x) FROM generate_series(1, 10) x)::text"),
            one("SELECT (SELECT personalize.comoments(x, x * 2) FROM generate_series(1, 10) x)::text"),
        ]
        self.float8_states = [s.strip("{}").split(",") for s in self.float8_states]
        self.options = ['{}', '{"factors": 4, "iterations": 2, "seed": 1}', '{"neighbors": 3, "shrinkage": 1.5}',
                        '{"regularization": 0.1, "alpha": 1, "cg_steps": 2, "threads": 1, "calculate_loss": true}',
                        '{"factors": {"a": [1, 2]}, "seed": null}']
        self.oids = {name: one(f"SELECT '{name}'::regtype::oid") for name in
                     ("personalize.model", "personalize.embedding", "bytea", "text", "double precision[]",
                      "bigint", "integer", "bigint[]", "real[]", "jsonb", "boolean")}
        conn.close()

    def prepare(self):
        o = self.oids
        model, emb, bytea = o["personalize.model"], o["personalize.embedding"], o["bytea"]
        self.statements = {
            "model_io": ("SELECT personalize.model_info(m), personalize.model_info(personalize.model_without_user(m, $2)),"
                         " length(m::text), length(personalize.model_send(m)) FROM (SELECT $1 AS m) s", [model, o["bigint"]]),
            "model_serve": ("SELECT fuzz.serve($1, $2, $3, $4, $5, $6)",
                            [model, o["bigint"], o["bigint"], o["integer"], o["bigint[]"], o["real[]"]]),
            "embedding": ("SELECT e::text, personalize.dims(e), personalize.norm(e), personalize.embedding_send(e), "
                          "personalize.l2_normalize(e)::text FROM (SELECT $1 AS e) s", [emb]),
            "embedding_typmod": ("SELECT $1::text::personalize.embedding(4)::text", [o["text"]]),
            "popularity_state": ("SELECT personalize.model_info(personalize.popularity_final($1))", [bytea]),
            "popularity_merge": ("SELECT personalize.model_info(fuzz.popularity_merge(s)) FROM "
                                 "unnest(ARRAY[$2, $1, $2]) s", [bytea, bytea]),
            "classification_state": ("SELECT (personalize.classification_final($1)).*", [bytea]),
            "classification_merge": ("SELECT (fuzz.classification_merge(s)).* FROM unnest(ARRAY[$2, $1]) s",
                                     [bytea, bytea]),
            "reliability_bins": ("SELECT count(*) FROM personalize.reliability_bins($1, $2, $3)",
                                 [bytea, o["integer"], o["text"]]),
            # one function per case, so that each one meets the mutated states
            "embedding_state": ("SELECT CASE $2 WHEN 0 THEN personalize.embedding_avg($1)::text "
                                "WHEN 1 THEN personalize.embedding_sum($1)::text "
                                "WHEN 2 THEN personalize.embedding_combine($1, $1)::text "
                                "WHEN 3 THEN personalize.embedding_accum($1, '[1,2,3]')::text "
                                "ELSE (SELECT fuzz.embedding_merge(s)::text FROM (VALUES ($1), ($1)) v(s)) END",
                                [o["double precision[]"], o["integer"]]),
            "moments_state": ("SELECT CASE $4 WHEN 0 THEN personalize.moments_final($1)::text "
                              "WHEN 1 THEN personalize.comoments_final($1)::text "
                              "WHEN 2 THEN personalize.moments_pad($1, 3)::text "
                              "WHEN 3 THEN personalize.moments_combine($1, $2)::text "
                              "WHEN 4 THEN personalize.comoments_combine($1, $2)::text "
                              "WHEN 5 THEN personalize.ab_test($1, $2, $3)::text "
                              "WHEN 6 THEN personalize.moments_accum($1, 2)::text "
                              "ELSE personalize.comoments_accum($1, 2, 3)::text END",
                              [o["double precision[]"], o["double precision[]"], o["boolean"], o["integer"]]),
            "interactions_state": ("SELECT personalize.model_info(fuzz.interactions_fit($1, $2))",
                                   [bytea, o["text"]]),
            "classifier_read": ("SELECT CASE $2 WHEN 0 THEN (SELECT count(*)::text FROM personalize.coefficients($1)) "
                                "WHEN 1 THEN personalize.model_info(personalize.calibration_fit($1, 'fuzz.people', "
                                "'isotonic'))::text WHEN 2 THEN personalize.model_info(personalize.calibration_fit($1, "
                                "'fuzz.people', 'platt'))::text ELSE length(personalize.logistic_spec($1, CASE WHEN "
                                "personalize.model_info($1) ->> 'algorithm' = 'uplift' THEN 'treated' END))::text END",
                                [model, o["integer"]]),
            "logistic_spec": ("SELECT CASE $2 WHEN 0 THEN (SELECT personalize.logistic_pass($1, label, 1.0, a, b, c)::text "
                              "FROM fuzz.people) ELSE (SELECT personalize.logistic_pass($1, label, 1.0, a, b)::text "
                              "FROM fuzz.people) END", [bytea, o["integer"]]),
            "logistic_state": ("SELECT CASE $2 WHEN 0 THEN personalize.logistic_pass_final($1)::text ELSE "
                               "(SELECT fuzz.logistic_merge(s)::text FROM (VALUES ($1), ($3)) v(s)) END",
                               [o["double precision[]"], o["integer"], o["double precision[]"]]),
            "uplift_state": ("SELECT CASE $2 WHEN 0 THEN personalize.uplift_summary($1)::text "
                             "WHEN 1 THEN (SELECT count(*)::text FROM personalize.uplift_curve($1)) "
                             "WHEN 2 THEN (SELECT count(*)::text FROM personalize.qini_curve($1)) "
                             "WHEN 3 THEN (SELECT count(*)::text FROM personalize.uplift_by_percentile($1, 3, 'by_group')) "
                             "ELSE (SELECT personalize.uplift_summary(fuzz.uplift_merge(s))::text "
                             "FROM (VALUES ($1), ($3)) v(s)) END", [bytea, o["integer"], bytea]),
            "options": ("SELECT personalize.model_info(CASE $2 WHEN 0 THEN personalize.als_fit(user_id, item_id, "
                        "weight, $1) WHEN 1 THEN personalize.itemknn_fit(user_id, item_id, weight, $1) ELSE "
                        "personalize.popularity_fit(user_id, item_id, weight, $1) END) FROM fuzz.tiny",
                        [o["jsonb"], o["integer"]]),
        }
        for name, (sql, types) in self.statements.items():
            res = self.pg.prepare(name.encode(), sql.encode(), types)
            if res.status != pq.ExecStatus.COMMAND_OK:
                raise SystemExit(f"fuzz: cannot prepare {name}: {res.error_message.decode()}")

    def open(self):
        self.conn = self.connect(DB)
        self.pg = self.conn.pgconn
        # rejections are the point: keep them out of the server log
        self.conn.execute("SET statement_timeout = '2s'; SET log_min_messages = fatal; "
                          "SET log_min_error_statement = panic")
        self.prepare()

    # Each case: (statement, [(value bytes or None, format)]) from its own generator.
    WEIGHTS = {"model_io": 16, "model_serve": 14, "embedding": 12, "embedding_typmod": 4,
               "popularity_state": 6, "popularity_merge": 5, "classification_state": 5,
               "classification_merge": 4, "reliability_bins": 5, "embedding_state": 6, "moments_state": 6,
               "interactions_state": 6, "options": 6,
               "classifier_read": 6, "logistic_spec": 5, "logistic_state": 5, "uplift_state": 5}

    def make_case(self, rng, target):
        t = lambda s: (s.encode("utf-8", "surrogatepass"), 0)
        b = lambda x: (x, 1)
        if target in ("model_io", "model_serve"):
            value = mutate_bytes(rng, rng.choice(self.models), self.models, varlena=True)
            if rng.random() < 0.1:
                value = rng.choice(self.models)            # valid values must work too
            param = b(value) if rng.random() < 0.5 else t("\\x" + (mutate_text(rng, value.hex(), ["0", "g"])
                                                                   if rng.random() < 0.05 else value.hex()))
            user = rng.choice([rng.randint(1, 60), rng.randint(1, 60), 0, -1, 1 << 62])
            if target == "model_io":
                return [param, t(str(user))]
            item = rng.choice([rng.randint(1000, 1079), rng.randint(1000, 1079), 7, -1])
            k = rng.choice([1, 3, 10, 79, 80, 81, 0, -1, 2147483647])
            items = [rng.choice([rng.randint(1000, 1079), 5]) for _ in range(rng.randint(0, 5))]
            weights = [rng.choice(["1", "0", "2.5", "1e30", "3.4e38"]) for _ in items]
            if rng.random() < 0.05:
                weights.append("1")
            return [param, t(str(user)), t(str(item)), t(str(k)), t("{%s}" % ",".join(map(str, items))),
                    t("{%s}" % ",".join(weights))]
        if target == "embedding":
            if rng.random() < 0.5:
                return [b(mutate_bytes(rng, rng.choice(self.embeddings), self.embeddings, varlena=False))]
            return [t(mutate_text(rng, rng.choice(self.embedding_texts), self.embedding_texts))]
        if target == "embedding_typmod":
            return [t(mutate_text(rng, rng.choice(self.embedding_texts), self.embedding_texts))]
        if target in ("popularity_state", "popularity_merge"):
            value = b(mutate_bytes(rng, rng.choice(self.popularity_states), self.popularity_states, varlena=False))
            return [value] if target == "popularity_state" else [value, b(rng.choice(self.popularity_states))]
        if target in ("classification_state", "classification_merge", "reliability_bins"):
            value = b(mutate_bytes(rng, rng.choice(self.samples), self.samples, varlena=False))
            if target == "classification_state":
                return [value]
            if target == "classification_merge":
                return [value, b(rng.choice(self.samples))]
            return [value, t(str(rng.choice([1, 2, 10, 0, -1, 10000, 10001]))),
                    t(rng.choice(["uniform", "quantile", "x"]))]
        if target == "embedding_state":
            return [t(float8_array(rng, self.float8_states[:1])), t(str(rng.randrange(5)))]
        if target == "moments_state":
            return [t(float8_array(rng, self.float8_states[1:])), t(float8_array(rng, self.float8_states[1:])),
                    t(rng.choice(["true", "false"])), t(str(rng.randrange(8)))]
        if target == "interactions_state":
            value = mutate_bytes(rng, rng.choice(self.interaction_states), self.interaction_states, varlena=False)
            return [b(value), t(rng.choice(["itemknn", "als"]))]
        if target == "classifier_read":
            value = mutate_bytes(rng, rng.choice(self.classifiers), self.models, varlena=True)
            if rng.random() < 0.1:
                value = rng.choice(self.classifiers)
            return [b(value), t(str(rng.randrange(4)))]
        if target == "logistic_spec":
            which = rng.randrange(2)
            value = mutate_bytes(rng, self.specs[which], self.specs, varlena=False)
            return [b(value if rng.random() > 0.05 else self.specs[which]), t(str(which))]
        if target == "logistic_state":
            return [t(float8_array(rng, self.logistic_states)), t(str(rng.randrange(2))),
                    t("{%s}" % ",".join(rng.choice(self.logistic_states)))]
        if target == "uplift_state":
            value = mutate_bytes(rng, rng.choice(self.uplift_states), self.uplift_states, varlena=False)
            return [b(value), t(str(rng.randrange(5))), b(rng.choice(self.uplift_states))]
        if target == "options":
            return [t(mutate_text(rng, rng.choice(self.options), self.options)), t(str(rng.randrange(3)))]
        raise ValueError(target)

    def run_case(self, case):
        rng = random.Random(self.args.seed * 1000003 + case)
        targets = list(self.WEIGHTS)
        target = rng.choices(targets, weights=[self.WEIGHTS[x] for x in targets])[0]
        if self.args.only and target not in self.args.only:
            return
        params = self.make_case(rng, target)
        started = time.perf_counter()
        res = self.execute(target.encode(), [p[0] for p in params], [p[1] for p in params])
        stats = self.stats[target]
        stats["cases"] += 1
        stats["ms"] += (time.perf_counter() - started) * 1000
        if res == "hang":
            stats["hangs"] += 1
            self.problem(case, target, params, f"no answer in {HANG_SECONDS} s despite statement_timeout: "
                         "a loop that does not check for interrupts")
            self.abandon()
            return
        if res is None or self.pg.status != pq.ConnStatus.OK:
            stats["crashes"] += 1
            self.problem(case, target, params, "server crash (connection lost)")
            self.conn.close()
            time.sleep(1)
            self.open()
            return
        if res.status == pq.ExecStatus.TUPLES_OK:
            stats["accepted"] += 1
            if target == "model_serve":
                result = res.get_value(0, 0).decode()
                for code in result.split():
                    stats["reader " + code[:5]] += 1
                if "XX000" in result:
                    stats["internal errors"] += 1
                    self.problem(case, target, params, "internal error in a reader: " + result)
            return
        code = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
        stats["rejected " + code] += 1
        if code in ("", "XX000"):
            stats["internal errors"] += 1
            self.problem(case, target, params, f"{code or 'no SQLSTATE'}: {res.error_message.decode().strip()}")

    def execute(self, name, values, formats):
        """The statement's result, None when the connection is lost, "hang" past HANG_SECONDS."""
        pg = self.pg
        try:
            pg.send_query_prepared(name, values, formats)
            end = time.monotonic() + HANG_SECONDS
            while True:
                pg.consume_input()
                if not pg.is_busy():
                    break
                left = end - time.monotonic()
                if left <= 0:
                    return "hang"
                select.select([pg.socket], [], [], min(left, 1.0))
            res = first = pg.get_result()
            while res is not None:
                res = pg.get_result()
            return first
        except (MemoryError, psycopg.Error):
            return None

    def abandon(self):
        """Leave a backend that does not answer: terminate it if it listens, go on in a new session."""
        pid = self.pg.backend_pid
        with self.connect(DB) as side:
            side.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        self.conn.close()
        self.open()

    def problem(self, case, target, params, what):
        path = os.path.join(self.args.out, f"{target}-{self.args.seed}-{case}.bin")
        with open(path, "wb") as f:
            f.write(params[0][0])
        self.problems.append(f"case {case} ({target}): {what}\n    input: {path}; replay: "
                             f"/usr/bin/python3 test/fuzz/fuzz.py --seed {self.args.seed} --case {case}")

    def report(self, elapsed, cases):
        print(f"fuzz: {cases} cases in {elapsed:.1f} s ({cases / max(elapsed, 1e-9):.0f}/s), seed {self.args.seed}")
        print(f"  {'target':<22}{'cases':>8}{'ms/case':>8}{'accepted':>10}{'crash/hang':>11}{'internal':>10}  "
              "most frequent rejections")
        for target in self.WEIGHTS:
            s = self.stats[target]
            rej = sorted(((n, k[9:]) for k, n in s.items() if k.startswith("rejected ")), reverse=True)[:4]
            print(f"  {target:<22}{s['cases']:>8}{s['ms'] / max(s['cases'], 1):>8.2f}{s['accepted']:>10}"
                  f"{s['crashes'] + s['hangs']:>11}{s['internal errors']:>10}  "
                  + ", ".join(f"{c} {n}" for n, c in rej))
        readers = sorted(((n, k[7:]) for k, n in self.stats["model_serve"].items() if k.startswith("reader ")),
                         reverse=True)
        print("  model readers on accepted models: " + ", ".join(f"{c} {n}" for n, c in readers))
        for p in self.problems[:20]:
            print("  PROBLEM " + p)
        if len(self.problems) > 20:
            print(f"  ... and {len(self.problems) - 20} more problems")
        crashes = sum(s["crashes"] + s["hangs"] for s in self.stats.values())
        internal = sum(s["internal errors"] for s in self.stats.values())
        print(f"fuzz: {crashes} crashes or hangs, {internal} internal errors")
        return crashes == 0 and internal == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first", type=int, default=0, help="number of the first case")
    ap.add_argument("--case", type=int, help="replay one case")
    ap.add_argument("--only", action="append", help="run only this target (repeatable)")
    ap.add_argument("--out", default=os.environ.get("FUZZ_OUT", "/tmp/pg_personalize_fuzz"))
    ap.add_argument("--keep", action="store_true", help="keep the fuzz database")
    ap.add_argument("--baseline", type=int, default=0,
                    help="first time this many cases of a trivial statement (the driver's round-trip bound)")
    args = ap.parse_args()
    fz = Fuzzer(args)
    fz.setup()
    fz.open()
    if args.baseline:
        fz.pg.prepare(b"baseline", b"SELECT length($1)", [fz.oids["bytea"]])
        start = time.time()
        for case in range(args.baseline):
            rng = random.Random(args.seed * 1000003 + case)
            value = mutate_bytes(rng, rng.choice(fz.models), fz.models, varlena=True)
            fz.execute(b"baseline", [value], [1])
        rate = args.baseline / (time.time() - start)
        print(f"baseline: {args.baseline} mutated values through SELECT length($1): {rate:.0f}/s")
    cases = [args.case] if args.case is not None else range(args.first, args.first + args.cases)
    start = time.time()
    last = start
    for n, case in enumerate(cases):
        fz.run_case(case)
        if time.time() - last > 60:
            last = time.time()
            print(f"fuzz: {n + 1} cases, {len(fz.problems)} problems, {last - start:.0f} s", flush=True)
    elapsed = time.time() - start
    ok = fz.report(elapsed, len(cases))
    if args.baseline:
        print(f"fuzz rate / baseline rate: {len(cases) / elapsed / rate:.2f}")
    fz.conn.close()
    if not args.keep:
        with fz.connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
