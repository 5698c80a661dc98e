-- embedding: float4 vectors with typmod dimensions, pgvector-compatible text form.

CREATE TYPE personalize.embedding;

CREATE FUNCTION personalize.embedding_in(cstring, oid, integer) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_out(personalize.embedding) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_recv(internal, oid, integer) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_send(personalize.embedding) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Stored uncompressed: float data does not compress, and trying costs time on every write.
CREATE TYPE personalize.embedding (
	INPUT = personalize.embedding_in,
	OUTPUT = personalize.embedding_out,
	TYPMOD_IN = personalize.embedding_typmod_in,
	TYPMOD_OUT = personalize.embedding_typmod_out,
	RECEIVE = personalize.embedding_recv,
	SEND = personalize.embedding_send,
	STORAGE = external
);

COMMENT ON TYPE personalize.embedding IS 'float4 vector with up to 16000 dimensions, text form [1,2,3]';

-- casts

CREATE FUNCTION personalize.embedding(personalize.embedding, integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'embedding_typmod_cast' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(integer[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(real[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(double precision[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.array_to_embedding(numeric[], integer, boolean) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'array_to_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_float4(personalize.embedding, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME', 'embedding_to_float4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_float8(personalize.embedding, integer, boolean) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'embedding_to_float8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_int4(personalize.embedding, integer, boolean) RETURNS integer[]
	AS 'MODULE_PATHNAME', 'embedding_to_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_to_numeric(personalize.embedding, integer, boolean) RETURNS numeric[]
	AS 'MODULE_PATHNAME', 'embedding_to_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (personalize.embedding AS personalize.embedding)
	WITH FUNCTION personalize.embedding(personalize.embedding, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS personalize.embedding)
	WITH FUNCTION personalize.array_to_embedding(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (personalize.embedding AS real[])
	WITH FUNCTION personalize.embedding_to_float4(personalize.embedding, integer, boolean) AS IMPLICIT;
CREATE CAST (personalize.embedding AS double precision[])
	WITH FUNCTION personalize.embedding_to_float8(personalize.embedding, integer, boolean);
CREATE CAST (personalize.embedding AS integer[])
	WITH FUNCTION personalize.embedding_to_int4(personalize.embedding, integer, boolean);
CREATE CAST (personalize.embedding AS numeric[])
	WITH FUNCTION personalize.embedding_to_numeric(personalize.embedding, integer, boolean);

-- distances and norms

CREATE FUNCTION personalize.l2_distance(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.inner_product(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.negative_inner_product(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.cosine_distance(personalize.embedding, personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.dims(personalize.embedding) RETURNS integer
	AS 'MODULE_PATHNAME', 'embedding_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm(personalize.embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'embedding_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- NORMALIZE is an SQL keyword bound to pg_catalog.normalize(text): call this one
-- qualified, personalize.normalize(e), or by its other name l2_normalize(e).
CREATE FUNCTION personalize.normalize(personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'embedding_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.l2_normalize(personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME', 'embedding_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR personalize.<-> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.l2_distance, COMMUTATOR = OPERATOR(personalize.<->)
);
CREATE OPERATOR personalize.<#> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.negative_inner_product, COMMUTATOR = OPERATOR(personalize.<#>)
);
CREATE OPERATOR personalize.<=> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.cosine_distance, COMMUTATOR = OPERATOR(personalize.<=>)
);

-- element-wise arithmetic

CREATE FUNCTION personalize.embedding_add(personalize.embedding, personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_sub(personalize.embedding, personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_mul(personalize.embedding, personalize.embedding) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR personalize.+ (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.embedding_add, COMMUTATOR = OPERATOR(personalize.+)
);
CREATE OPERATOR personalize.- (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.embedding_sub
);
CREATE OPERATOR personalize.* (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding,
	FUNCTION = personalize.embedding_mul, COMMUTATOR = OPERATOR(personalize.*)
);

-- ordering, equality and hashing (DISTINCT, GROUP BY, UNIQUE, hash joins)

CREATE FUNCTION personalize.embedding_lt(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_le(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_eq(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_ne(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_ge(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_gt(personalize.embedding, personalize.embedding) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_cmp(personalize.embedding, personalize.embedding) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_hash(personalize.embedding) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR personalize.< (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_lt,
	COMMUTATOR = OPERATOR(personalize.>), NEGATOR = OPERATOR(personalize.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR personalize.<= (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_le,
	COMMUTATOR = OPERATOR(personalize.>=), NEGATOR = OPERATOR(personalize.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR personalize.= (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_eq,
	COMMUTATOR = OPERATOR(personalize.=), NEGATOR = OPERATOR(personalize.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR personalize.<> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_ne,
	COMMUTATOR = OPERATOR(personalize.<>), NEGATOR = OPERATOR(personalize.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR personalize.>= (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_ge,
	COMMUTATOR = OPERATOR(personalize.<=), NEGATOR = OPERATOR(personalize.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR personalize.> (
	LEFTARG = personalize.embedding, RIGHTARG = personalize.embedding, PROCEDURE = personalize.embedding_gt,
	COMMUTATOR = OPERATOR(personalize.<), NEGATOR = OPERATOR(personalize.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

CREATE OPERATOR CLASS personalize.embedding_ops
	DEFAULT FOR TYPE personalize.embedding USING btree AS
	OPERATOR 1 personalize.<,
	OPERATOR 2 personalize.<=,
	OPERATOR 3 personalize.=,
	OPERATOR 4 personalize.>=,
	OPERATOR 5 personalize.>,
	FUNCTION 1 personalize.embedding_cmp(personalize.embedding, personalize.embedding);

CREATE OPERATOR CLASS personalize.embedding_hash_ops
	DEFAULT FOR TYPE personalize.embedding USING hash AS
	OPERATOR 1 personalize.=,
	FUNCTION 1 personalize.embedding_hash(personalize.embedding);

-- sum and avg; the float8[] state {count, sums...} is a concrete type, so partial
-- aggregation works in parallel query and on Citus workers.

CREATE FUNCTION personalize.embedding_accum(double precision[], personalize.embedding) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_avg(double precision[]) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.embedding_sum(double precision[]) RETURNS personalize.embedding
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.avg(personalize.embedding) (
	SFUNC = personalize.embedding_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.embedding_avg,
	COMBINEFUNC = personalize.embedding_combine,
	PARALLEL = SAFE
);
CREATE AGGREGATE personalize.sum(personalize.embedding) (
	SFUNC = personalize.embedding_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.embedding_sum,
	COMBINEFUNC = personalize.embedding_combine,
	PARALLEL = SAFE
);
