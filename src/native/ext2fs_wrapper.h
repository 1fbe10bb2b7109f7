/* libext2fs for src/native/ext2fs.rs. NO_INLINE_FUNCS turns ext2fs.h's inline helpers into plain
 * prototypes: libext2fs.so exports them all, so bindgen can bind them like any other call. */
#define NO_INLINE_FUNCS
#include <ext2fs/ext2fs.h>
#include <et/com_err.h>
