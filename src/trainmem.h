/*
 * trainmem.h — memory for the factor matrices while they train (trainmem.c).
 */
#ifndef PERSONALIZE_TRAINMEM_H
#define PERSONALIZE_TRAINMEM_H

#include "postgres.h"

extern float *trainmem_alloc(Size bytes, void **chunk);
extern void trainmem_release(void *start, Size bytes, bool shared);
extern void trainmem_copy_out(void *dst, float *src, Size bytes);

#endif
