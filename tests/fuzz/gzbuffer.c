/* gzbuffer.c - linked into every fuzz target with -Wl,--wrap=gzbuffer: the data readers ask
 * zlib for 128 KiB buffers (right for real files), which under ASan are an mmap and munmap
 * per file opened, most of an execution's cost on the fuzzers' inputs of a few hundred bytes.
 * 4 KiB buffers go through the same reading code, refilled more often. Not used elsewhere. */
#include <zlib.h>

int __real_gzbuffer(gzFile file, unsigned size);
int __wrap_gzbuffer(gzFile file, unsigned size);

int __wrap_gzbuffer(gzFile file, unsigned size)
{
    return __real_gzbuffer(file, size > 4096 ? 4096 : size);
}
