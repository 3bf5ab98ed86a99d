/* Built-in fault injection (CONVENTIONS.md "Tests"; SQLite's
 * sqlite3FaultSim idea). A named point does nothing unless switched on:
 *
 *   OZONE_FAULT="version.finalize.after_action"            -> error
 *   OZONE_FAULT="version.finalize.after_action:crash"      -> _exit(86)
 *   OZONE_FAULT="a:crash,b"                                 several points
 *
 * or programmatically with fault_set() (unit tests). fault_hit() returns
 * OZ_EFAULT for an "error" point (the caller fails as if the I/O failed)
 * and never returns for a "crash" point. Points named in the environment
 * are logged when hit. */
#ifndef OZONE_FAULT_H
#define OZONE_FAULT_H

enum fault_mode { FAULT_OFF = 0, FAULT_ERROR, FAULT_CRASH };

/* 0 or OZ_EFAULT (or does not return for a crash point). */
int fault_hit(const char *name);

/* Overrides the environment for name; FAULT_OFF removes it. */
void fault_set(const char *name, enum fault_mode mode);
void fault_clear_all(void);

#endif
