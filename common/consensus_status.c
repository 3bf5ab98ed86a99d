/* consensus: the status copy other threads read (refreshed on the raft
 * thread under c->mu), event logging and the query functions. */
#include "consensus.h"
#include "consensus_internal.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"

static enum consensus_role role_of(int state)
{
    switch (state) {
        case RAFT_FOLLOWER:
            return CONSENSUS_FOLLOWER;
        case RAFT_CANDIDATE:
            return CONSENSUS_CANDIDATE;
        case RAFT_LEADER:
            return CONSENSUS_LEADER;
        default:
            return CONSENSUS_UNAVAILABLE;
    }
}

const char *consensus_role_name(enum consensus_role role)
{
    switch (role) {
        case CONSENSUS_FOLLOWER:
            return "follower";
        case CONSENSUS_CANDIDATE:
            return "candidate";
        case CONSENSUS_LEADER:
            return "leader";
        default:
            return "unavailable";
    }
}

const char *consensus_member_role_name(enum consensus_member_role role)
{
    switch (role) {
        case CONSENSUS_VOTER:
            return "voter";
        case CONSENSUS_STANDBY:
            return "standby";
        default:
            return "spare";
    }
}

/* Splits a raft address "name@host:port" into its parts (either output may
 * be NULL). Without '@' the name is empty. */
void consensus__split_raft_address(const char *raft_address,
                                   char *name,
                                   size_t name_size,
                                   char *address,
                                   size_t address_size)
{
    const char *at = raft_address != NULL ? strchr(raft_address, '@') : NULL;

    if (name != NULL && name_size > 0) {
        name[0] = '\0';
        if (at != NULL) {
            size_t n = (size_t)(at - raft_address);
            if (n >= name_size) {
                n = name_size - 1;
            }
            memcpy(name, raft_address, n);
            name[n] = '\0';
        }
    }
    if (address != NULL && address_size > 0) {
        oz_strlcpy(address,
                   raft_address == NULL ? ""
                   : at != NULL         ? at + 1
                                        : raft_address,
                   address_size);
    }
}

/* ---- status (raft thread writes, anyone reads) ---- */

static void log_members(struct consensus *c)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    char line[512];
    size_t used = 0;
    unsigned i;

    line[0] = '\0';
    for (i = 0; i < conf->n && used < sizeof(line); i++) {
        char name[CONSENSUS_NAME_MAX];
        int n;

        consensus__split_raft_address(conf->servers[i].address, name,
                                      sizeof(name), NULL, 0);
        n = snprintf(line + used, sizeof(line) - used, "%s%s(%llu,%s)",
                     i > 0 ? " " : "", name, conf->servers[i].id,
                     consensus_member_role_name(
                         (enum consensus_member_role)conf->servers[i].role));
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    log_info(
        "consensus '%s': membership %s (index %llu%s)", c->name, line,
        c->raft.configuration_index,
        c->raft.configuration_uncommitted_index != 0 ? ", uncommitted" : "");
}

void consensus__status_refresh(struct consensus *c)
{
    struct raft *r = &c->raft;
    struct consensus_status *st = &c->status;
    const struct raft_configuration *conf = &r->configuration;
    raft_id leader = 0;
    const char *leader_address = NULL;
    int state;
    bool conf_changed;
    unsigned i;

    if (c->raft_closed) {
        return;
    }
    state = raft_state(r);
    raft_leader(r, &leader, &leader_address);
    conf_changed =
        r->configuration_index != c->seen_conf_index ||
        r->configuration_uncommitted_index != c->seen_conf_uncommitted ||
        conf->n != c->seen_conf_n;

    pthread_mutex_lock(&c->mu);
    st->role = role_of(state);
    st->term = r->current_term;
    st->commit_index = r->commit_index;
    st->last_applied = raft_last_applied(r);
    st->last_index = raft_last_index(r);
    st->snapshot_index = r->log.snapshot.last_index;
    st->first_index =
        r->log.offset + 1 <= st->last_index ? r->log.offset + 1 : 0;
    if (leader != st->leader_id) {
        st->leader_id = leader;
        consensus__split_raft_address(leader != 0 ? leader_address : NULL,
                                      st->leader_name, sizeof(st->leader_name),
                                      st->leader_address,
                                      sizeof(st->leader_address));
    }
    if (conf_changed) {
        st->n_members = 0;
        for (i = 0; i < conf->n && i < CONSENSUS_MAX_MEMBERS; i++) {
            struct consensus_member *m = &st->members[i];
            m->id = conf->servers[i].id;
            m->role = (enum consensus_member_role)conf->servers[i].role;
            consensus__split_raft_address(conf->servers[i].address, m->name,
                                          sizeof(m->name), m->address,
                                          sizeof(m->address));
            st->n_members++;
        }
    }
    for (i = 0; i < st->n_members; i++) {
        st->members[i].is_leader = st->members[i].id == leader;
    }
    pthread_mutex_unlock(&c->mu);

    if (state != c->seen_state) {
        if (state == RAFT_LEADER || state == RAFT_FOLLOWER) {
            log_info("consensus '%s': became %s in term %llu", c->name,
                     consensus_role_name(role_of(state)), r->current_term);
        } else {
            log_debug("consensus '%s': %s in term %llu", c->name,
                      consensus_role_name(role_of(state)), r->current_term);
        }
    }
    if (leader != c->seen_leader && leader != 0 && leader != c->id) {
        log_info(
            "consensus '%s': following leader '%s' (id %llu) in term "
            "%llu",
            c->name, st->leader_name, leader, r->current_term);
    }
    c->seen_state = state;
    c->seen_term = r->current_term;
    c->seen_leader = leader;
    if (conf_changed) {
        c->seen_conf_index = r->configuration_index;
        c->seen_conf_uncommitted = r->configuration_uncommitted_index;
        c->seen_conf_n = conf->n;
        if (conf->n > 0) {
            log_members(c);
        }
    }
}

void consensus_status(struct consensus *c, struct consensus_status *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->status;
    pthread_mutex_unlock(&c->mu);
}

bool consensus_is_leader(struct consensus *c)
{
    return consensus_role(c) == CONSENSUS_LEADER;
}

enum consensus_role consensus_role(struct consensus *c)
{
    enum consensus_role role;

    pthread_mutex_lock(&c->mu);
    role = c->status.role;
    pthread_mutex_unlock(&c->mu);
    return role;
}

uint64_t consensus_term(struct consensus *c)
{
    uint64_t v;

    pthread_mutex_lock(&c->mu);
    v = c->status.term;
    pthread_mutex_unlock(&c->mu);
    return v;
}

uint64_t consensus_commit_index(struct consensus *c)
{
    uint64_t v;

    pthread_mutex_lock(&c->mu);
    v = c->status.commit_index;
    pthread_mutex_unlock(&c->mu);
    return v;
}

uint64_t consensus_last_applied(struct consensus *c)
{
    uint64_t v;

    pthread_mutex_lock(&c->mu);
    v = c->status.last_applied;
    pthread_mutex_unlock(&c->mu);
    return v;
}

int consensus_leader(struct consensus *c,
                     uint64_t *id,
                     char *name,
                     size_t name_size,
                     char *address,
                     size_t address_size)
{
    int rc = 0;

    if (id != NULL) {
        *id = 0;
    }
    pthread_mutex_lock(&c->mu);
    if (c->status.leader_id == 0) {
        rc = OZ_ENOTFOUND;
    } else {
        if (id != NULL) {
            *id = c->status.leader_id;
        }
        if (name != NULL && name_size > 0) {
            oz_strlcpy(name, c->status.leader_name, name_size);
        }
        if (address != NULL && address_size > 0) {
            oz_strlcpy(address, c->status.leader_address, address_size);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

unsigned consensus_members(struct consensus *c,
                           struct consensus_member *out,
                           unsigned max)
{
    unsigned n, i;

    pthread_mutex_lock(&c->mu);
    n = c->status.n_members;
    for (i = 0; i < n && i < max; i++) {
        out[i] = c->status.members[i];
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

uint64_t consensus_id(const struct consensus *c)
{
    return c->id;
}

const char *consensus_name(const struct consensus *c)
{
    return c->name;
}

unsigned consensus__count_voters(struct consensus *c)
{
    unsigned i, n = 0;

    pthread_mutex_lock(&c->mu);
    for (i = 0; i < c->status.n_members; i++) {
        n += c->status.members[i].role == CONSENSUS_VOTER;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}
