/* Temporary directories of the unit tests: one copy of the recursive
 * removal every test's teardown needs. */
#ifndef OZONE_TEST_TMPDIR_H
#define OZONE_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int test_tmpdir_rm_entry(const char *path,
                                       const struct stat *st,
                                       int flag,
                                       struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it (links are removed, not followed). */
static inline void test_tmpdir_remove(const char *dir)
{
    nftw(dir, test_tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
