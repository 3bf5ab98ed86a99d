/* What OM serves Recon (DESIGN.md §9): GET /dbCheckpoint (om_checkpoint.c)
 * and the OmDbService DBUpdates RPC (om_dbupdates.c). Private to
 * services/om; registered from the OM's setup.
 */
#ifndef OZONE_OM_RECON_H
#define OZONE_OM_RECON_H

#include "daemon.h"
#include "tar.h"

/* Every archive ends with the TAR_CHECKPOINT_TRAILER member (tar.h). */
#define OM_CHECKPOINT_TRAILER TAR_CHECKPOINT_TRAILER

/* Fault point (common/fault.h): when on, the archive served is cut to
 * half its length, as a connection dropped mid-transfer would leave it. */
#define OM_CHECKPOINT_FAULT_TRUNCATE "om.checkpoint.truncate"
/* Fault point: the download of a whole checkpoint is cut half-way. */
#define OM_CHECKPOINT_FAULT_CUT "om.checkpoint.cut"

/* Registers GET /dbCheckpoint on d->http and removes checkpoints left
 * under <storage>/checkpoints by an earlier run. 0 or OZ_E* with errmsg. */
int om_checkpoint_register(struct daemon *d, char *errmsg);

/* Registers ozone.om.OmDbService on d->rpc. 0 or OZ_E* with errmsg. */
int om_dbupdates_register(struct daemon *d, char *errmsg);

#endif
