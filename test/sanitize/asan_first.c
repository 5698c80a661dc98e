/*
 * asan_first.c — preloaded after libasan into Debian's stock postgres, so that
 * the ASan runtime can initialise inside another library's constructor.
 *
 * Why the naive LD_PRELOAD=libasan.so.8 hangs: a preloaded runtime initialises
 * lazily, at its first intercepted call, and postgres's libraries run their
 * constructors before libasan's (libgpg-error calls bindtextdomain(), p11-kit
 * newlocale()). Those hold gettext's or the locale lock of libc while they
 * call malloc(); the interceptor initialises ASan there, its start-up looks up
 * the optional symbol swift_demangle with dlsym() and clears the failure with
 * dlerror(), and dlerror() translates its message through gettext, which takes
 * the same lock again. The lock is left in a broken state and the postmaster
 * waits forever in bindtextdomain() (a futex wait, seen with gdb).
 *
 * Defining swift_demangle makes that lookup succeed, so start-up never calls
 * gettext. ASan calls it only for Swift-mangled names; NULL means "not
 * demangled".
 */
#include <stddef.h>
#include <stdint.h>

extern char *swift_demangle(const char *mangled, size_t mangled_length, char *output,
							size_t *output_length, uint32_t flags);

char *
swift_demangle(const char *mangled, size_t mangled_length, char *output,
			   size_t *output_length, uint32_t flags)
{
	return NULL;
}
