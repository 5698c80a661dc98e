/*
 * progress.h — what a training or refresh is doing, for other sessions
 * (personalize.training_progress). See progress.c for the mechanism.
 */
#ifndef PERSONALIZE_PROGRESS_H
#define PERSONALIZE_PROGRESS_H

#include "postgres.h"

typedef enum ProgressPhase
{
	PROGRESS_CHECKING = 1,
	PROGRESS_DRIFT,
	PROGRESS_READING,
	PROGRESS_BUILDING,
	PROGRESS_TRAINING,
	PROGRESS_EVALUATING,
	PROGRESS_STORING
} ProgressPhase;

#define PROGRESS_ROWS_BATCH 16384

extern int64 progress_pending_rows;
extern void progress_flush_rows(void);
extern void progress_hand_over_rows(int64 rows);
extern void progress_take_over_rows(int64 rows);
extern void progress_set_phase(ProgressPhase phase);
extern void progress_set_iteration(int iteration, int iterations, double loss);

/* Per input row of a training aggregate: a counter, published every batch. */
static inline void
progress_count_row(void)
{
	if (unlikely(++progress_pending_rows >= PROGRESS_ROWS_BATCH))
		progress_flush_rows();
}

#endif
