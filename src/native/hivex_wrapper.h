/* libhivex for src/native/hive.rs. */
#include <stddef.h>
#include <stdint.h>
#include <hivex.h>
