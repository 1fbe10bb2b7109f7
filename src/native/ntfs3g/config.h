/* types.h of libntfs-3g includes "config.h" from its own build; the installed headers only need
 * to know which standard headers exist. */
#define HAVE_STDINT_H 1
#define HAVE_STDLIB_H 1
#define HAVE_STRING_H 1
#define HAVE_SYS_TYPES_H 1
#define HAVE_ERRNO_H 1
#define HAVE_TIME_H 1
#define HAVE_STDARG_H 1
#define HAVE_STDIO_H 1
#define HAVE_SYS_STAT_H 1
#define POSIXACLS 0
