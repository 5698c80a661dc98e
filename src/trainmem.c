/*
 * trainmem.c — the factor matrices train in private memory backed by
 * transparent huge pages, then are copied into the model image.
 *
 * A half-iteration reads the other side's rows in random order: over a
 * gigabyte of 4 kB pages nearly every read misses the TLB as well as the
 * cache. Anonymous memory gets 2 MB pages when advised (the usual THP setting
 * "madvise"); the image cannot, when it is a shared memory segment (shmem
 * THP is usually off). So training allocates its own copy, advised before
 * its first touch, and gives the image's factor pages back to the system
 * until the copy is written into them, piece by piece, each piece of the
 * copy released once written: the factors are in memory once at any time.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "trainmem.h"

#define HUGE_PAGE ((Size) 2 * 1024 * 1024)
#define COPY_PIECE (32 * HUGE_PAGE)

/*
 * bytes of memory starting at a huge page boundary, in a chunk of the
 * current memory context (*chunk, for pfree).
 */
float *
trainmem_alloc(Size bytes, void **chunk)
{
	char	   *raw = MemoryContextAllocHuge(CurrentMemoryContext, bytes + HUGE_PAGE);
	char	   *start = (char *) TYPEALIGN(HUGE_PAGE, raw);

#ifdef MADV_HUGEPAGE
	/* only a hint: without it (or THP "never") training is as before, slower */
	if (bytes >= HUGE_PAGE)
		(void) madvise(start, TYPEALIGN_DOWN(HUGE_PAGE, bytes), MADV_HUGEPAGE);
#endif
	*chunk = raw;
	return (float *) start;
}

/*
 * The whole pages inside [start, start + bytes) go back to the system; they
 * read as zeros until written again. shared: a shared memory segment, whose
 * pages are freed only by MADV_REMOVE.
 */
void
trainmem_release(void *start, Size bytes, bool shared)
{
	Size		page = (Size) sysconf(_SC_PAGESIZE);
	char	   *from = (char *) TYPEALIGN(page, start);
	char	   *to = (char *) TYPEALIGN_DOWN(page, (char *) start + bytes);

	/* only memory use depends on it: a failure leaves the pages in place */
	if (to > from)
		(void) madvise(from, to - from, shared ? MADV_REMOVE : MADV_DONTNEED);
}

/* dst = src (from trainmem_alloc), releasing src piece by piece as it is copied. */
void
trainmem_copy_out(void *dst, float *src, Size bytes)
{
	for (Size done = 0; done < bytes; done += COPY_PIECE)
	{
		Size		n = Min(COPY_PIECE, bytes - done);

		memcpy((char *) dst + done, (char *) src + done, n);
		trainmem_release((char *) src + done, n, false);
	}
}
