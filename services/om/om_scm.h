/* om_scm: the OM's client of SCM's ScmBlockService (DESIGN.md §2, §7):
 * block allocation for CreateKey and AllocateBlock.
 *
 * SCM's address is the first of ozone.scm.names, else
 * ozone.scm.client.address (daemon_scm_address; Ozone's own key for this
 * edge, ozone.scm.block.client.address, is not read yet). Each call is
 * bounded: half of ozone.rpc.timeout per attempt and at most three attempts
 * when SCM is unreachable, so a CreateKey never waits on SCM longer than
 * its client waits on the OM. Thread-safe.
 */
#ifndef OZONE_OM_SCM_H
#define OZONE_OM_SCM_H

#include <stdint.h>

#include "daemon.h"
#include "om.pb-c.h"
#include "om_state.h"

struct om_scm
{
    struct rpc_client *client;
    char address[256];
    char owner[128]; /* OM service id sent as the block owner */
};

/* Creates the client (no connection is made yet). 0 or OZ_E* with
 * errmsg. */
int om_scm_init(struct om_scm *s, struct daemon *d, char *errmsg);
void om_scm_release(struct om_scm *s);

/* Asks SCM for one block of factor f for a key of size bytes, avoiding
 * ex (may be NULL). On OK, *out is a KeyLocation (offset 0, length = the
 * bytes SCM reserved, block id, pipeline) allocated from alloc (must not
 * be NULL). Otherwise res tells why: UNAVAILABLE naming SCM's address when
 * SCM cannot be reached in time, SCM's own code and message when it
 * refused (e.g. FAILED_TO_FIND_HEALTHY_NODES), INTERNAL_ERROR for a reply
 * without a usable block. *status gets the gRPC status to answer with. */
Ozone__ResultCode om_scm_allocate(struct om_scm *s,
                                  uint64_t size,
                                  Ozone__Hdds__ReplicationFactor f,
                                  const Ozone__Hdds__ExcludeList *ex,
                                  ProtobufCAllocator *alloc,
                                  Ozone__Om__KeyLocation **out,
                                  enum rpc_status *status,
                                  struct om_result *res);

#endif
