/* libntfs-3g for src/native/ntfs.rs: the volume, device, directory, attribute and security calls
 * behind the caged NTFS writer. */
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <ntfs-3g/types.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/unistr.h>
#include <ntfs-3g/security.h>
#include <ntfs-3g/logging.h>
