# pg_personalize — PGXS build.
#   make && sudo make install && make installcheck
EXTENSION = pg_personalize
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = $(EXTENSION)
# One concern per file; the install script is assembled from the SQL beside
# each C file, in this order (later parts may use earlier ones).
CONCERNS = embedding sqlsource statistics evaluation classification model modelstore modelcache interactions popularity itemknn als bpr hybrid dp editorial serving explain classifier logistic calibration uplift quality drift progress nodeconsent distributed
# Concerns written in SQL only (no C file); assembled after the C concerns.
SQL_ONLY_CONCERNS = registry experiments fairness consent privacy_report scaleout roles refresh schedule
OBJS = src/pg_personalize.o src/distance.o src/sgd.o src/trainmem.o $(patsubst %,src/%.o,$(CONCERNS))
SQL_PARTS = $(patsubst %,src/%.sql,$(CONCERNS) $(SQL_ONLY_CONCERNS))

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# Earlier releases' install scripts are kept as built (sql/pg_personalize--0.1.0.sql)
# beside the upgrade scripts, so an old version can be installed and updated.
DATA = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))
DOCS = $(wildcard doc/*.md)

REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

SHLIB_LINK = -lopenblas -lm
PG_CPPFLAGS = -I$(srcdir)/src
# CI builds with WERROR=1: our own code compiles warning-free.
ifdef WERROR
PG_CFLAGS += -Werror
endif

EXTRA_CLEAN = $(DATA_built) results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Distance kernels: let the compiler vectorise float reductions (reassociation
# is safe there; no NaN or Inf reaches them, see CheckEmbeddingElement).
src/distance.o: override CFLAGS += -ftree-vectorize -fassociative-math -fno-signed-zeros -fno-trapping-math
src/distance.bc: override BITCODE_CFLAGS += -ftree-vectorize -fassociative-math -fno-signed-zeros -fno-trapping-math
# Training and serving kernels: the same, at -O3 (the CG and scoring loops).
MODEL_KERNELS = src/als.o src/itemknn.o src/serving.o src/logistic.o src/sgd.o src/distributed.o
$(MODEL_KERNELS): override CFLAGS += -O3 -ftree-vectorize -fassociative-math -fno-signed-zeros -fno-trapping-math

# PGXS does not track header dependencies: rebuild every object when a header changes
$(OBJS): $(wildcard src/*.h)

$(DATA_built): $(SQL_PARTS) $(EXTENSION).control Makefile
	( echo '-- complain if script is sourced in psql rather than via CREATE EXTENSION'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	  for f in $(SQL_PARTS); do echo; echo "-- ==== $$f ===="; cat $$f; done ) > $@
