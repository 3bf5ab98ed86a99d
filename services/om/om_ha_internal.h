/* om_ha internals shared by om_ha.c, om_ha_fsm.c and om_admin.c. */
#ifndef OZONE_OM_HA_INTERNAL_H
#define OZONE_OM_HA_INTERNAL_H

#include "om_ha.h"

/* metaTable key: the raft index of the snapshot a checkpoint was taken
 * for (om_ha_fsm.c). Local to each OM, outside the compared tables. */
#define OM_RAFT_SNAPSHOT_KEY "#RAFTSNAPSHOTINDEX"

/* Raft entry types of the OM log. */
enum om_ha_entry_type {
    OM_HA_ENTRY_WRITE_OP = 1, /* a packed Ozone__Om__OmWriteOp */
};

/* Fills fsm with the OM's callbacks (ctx: ha). */
void om_ha__fsm_init(struct om_ha *ha, struct consensus_fsm *fsm);

/* The outcome recorded when index was applied here (result is the FSM's
 * code, used when the message was already overwritten). */
void om_ha__take_result(struct om_ha *ha,
                        uint64_t index,
                        int result,
                        struct om_result *res);

/* current/prepareMarker: write (fsynced, atomic rename) or remove. */
int om_ha__write_marker(struct om_ha *ha, uint64_t index);
void om_ha__remove_marker(struct om_ha *ha);

#endif
