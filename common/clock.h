/* clock: the time helpers every module needs (one copy for the tree).
 *
 * oz_mono_ms: CLOCK_MONOTONIC in milliseconds, for intervals and timeouts.
 * oz_wall_ms: CLOCK_REALTIME in milliseconds since the epoch, for what is
 *             stored or shown (heartbeat times, journal entries, leases).
 * oz_sleep_ms: sleeps ms milliseconds (resumes after signals).
 * oz_deadline_ms: the absolute time ms from now on clock id, for
 *             pthread_cond_timedwait and friends.
 */
#ifndef OZONE_CLOCK_H
#define OZONE_CLOCK_H

#include <stdint.h>
#include <time.h>

int64_t oz_mono_ms(void);
uint64_t oz_wall_ms(void);
void oz_sleep_ms(long ms);
struct timespec oz_deadline_ms(clockid_t id, long ms);

#endif
