/*
 * distance.h — float4 vector kernels shared by the embedding operators and
 * model serving. Plain loops, vectorised by the compiler (see Makefile).
 */
#ifndef PERSONALIZE_DISTANCE_H
#define PERSONALIZE_DISTANCE_H

extern float l2_squared_distance(int dim, const float *a, const float *b);
extern float inner_product(int dim, const float *a, const float *b);
extern double cosine_similarity(int dim, const float *a, const float *b);
extern double squared_norm(int dim, const float *a);

#endif
