/* The OM's write path without RPC (services/om/om_apply.c): operations are
 * applied to a real RocksDB in a temporary directory. Covers Ozone's rules
 * for volumes, buckets and keys, commit replacing a key, rename, list
 * paging, replay of an applied index, persistence of the applied index,
 * the finalization marker with who asked for it, and determinism
 * (DESIGN.md §8.1: the same ops give the same bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "fault.h"
#include "kv.h"
#include "om_state.h"
#include "om_upgrade.h"
#include "test_tmpdir.h"

#define OK OZONE__RESULT_CODE__OK
#define T0 1700000000000ull

struct fixture
{
    char dir[64];
    char db[128];
    struct kv *kv;
    struct om om;
    uint64_t clock_ms;
};

static void open_db(struct fixture *f)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";

    if (kv_open(&f->kv, f->db, om_cf_names, OM_N_CFS, KV_CREATE, errmsg) != 0 ||
        om_init(&f->om, f->kv, errmsg) != 0) {
        fail_msg("cannot open the OM DB: %s", errmsg);
    }
}

static void close_db(struct fixture *f)
{
    om_release(&f->om);
    kv_close(f->kv);
    f->kv = NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_om_apply.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    f->clock_ms = T0;
    open_db(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close_db(f);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ---- op builders: each submits one op and returns the result code ---- */

static Ozone__ResultCode submit(struct fixture *f,
                                Ozone__Om__OmWriteOp *op,
                                struct om_result *res)
{
    struct om_result local;

    res = res ? res : &local;
    op->time_ms = f->clock_ms++;
    assert_int_equal(om_submit(&f->om, op, res), 0);
    return res->code;
}

static Ozone__ResultCode create_volume(struct fixture *f,
                                       const char *name,
                                       const char *owner)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CreateVolumeRequest r = OZONE__OM__CREATE_VOLUME_REQUEST__INIT;
    Ozone__Om__VolumeInfo v = OZONE__OM__VOLUME_INFO__INIT;

    v.name = (char *)name;
    v.owner = (char *)owner;
    v.admin = "ozone";
    r.volume = &v;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME;
    op.create_volume = &r;
    return submit(f, &op, NULL);
}

static Ozone__ResultCode delete_volume(struct fixture *f, const char *name)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__DeleteVolumeRequest r = OZONE__OM__DELETE_VOLUME_REQUEST__INIT;

    r.volume = (char *)name;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_VOLUME;
    op.delete_volume = &r;
    return submit(f, &op, NULL);
}

static Ozone__ResultCode create_bucket(struct fixture *f,
                                       const char *vol,
                                       const char *name,
                                       Ozone__Hdds__ReplicationFactor rep)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CreateBucketRequest r = OZONE__OM__CREATE_BUCKET_REQUEST__INIT;
    Ozone__Om__BucketInfo b = OZONE__OM__BUCKET_INFO__INIT;

    b.volume = (char *)vol;
    b.name = (char *)name;
    b.replication = rep;
    r.bucket = &b;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_BUCKET;
    op.create_bucket = &r;
    return submit(f, &op, NULL);
}

static Ozone__ResultCode delete_bucket(struct fixture *f,
                                       const char *vol,
                                       const char *name)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__DeleteBucketRequest r = OZONE__OM__DELETE_BUCKET_REQUEST__INIT;

    r.volume = (char *)vol;
    r.bucket = (char *)name;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_BUCKET;
    op.delete_bucket = &r;
    return submit(f, &op, NULL);
}

/* A block as SCM would allocate it: container c, local id l, one member. */
struct block
{
    Ozone__Hdds__BlockID id;
    Ozone__Hdds__DatanodeDetails dn;
    Ozone__Hdds__DatanodeDetails *members[1];
    Ozone__Hdds__Pipeline pipeline;
    Ozone__Om__KeyLocation loc;
};

static void make_block(struct block *b, uint64_t c, uint64_t l, uint64_t length)
{
    ozone__hdds__block_id__init(&b->id);
    ozone__hdds__datanode_details__init(&b->dn);
    ozone__hdds__pipeline__init(&b->pipeline);
    ozone__om__key_location__init(&b->loc);
    b->id.container_id = c;
    b->id.local_id = l;
    b->dn.uuid = "dn1";
    b->dn.ip_address = "127.0.0.1";
    b->dn.container_port = 9859;
    b->members[0] = &b->dn;
    b->pipeline.id = "pipeline-1";
    b->pipeline.factor = OZONE__HDDS__REPLICATION_FACTOR__ONE;
    b->pipeline.n_members = 1;
    b->pipeline.members = b->members;
    b->loc.block_id = &b->id;
    b->loc.pipeline = &b->pipeline;
    b->loc.length = length;
}

static Ozone__ResultCode open_key(struct fixture *f,
                                  const char *vol,
                                  const char *bucket,
                                  const char *key,
                                  uint64_t client_id,
                                  struct block *first)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmOpenKeyOp o = OZONE__OM__OM_OPEN_KEY_OP__INIT;
    Ozone__Om__KeyInfo k = OZONE__OM__KEY_INFO__INIT;
    Ozone__Om__KeyLocation *locs[1] = {&first->loc};

    k.volume = (char *)vol;
    k.bucket = (char *)bucket;
    k.name = (char *)key;
    k.replication = OZONE__HDDS__REPLICATION_FACTOR__ONE;
    k.n_locations = 1;
    k.locations = locs;
    o.client_id = client_id;
    o.key = &k;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_OPEN_KEY;
    op.open_key = &o;
    return submit(f, &op, NULL);
}

static Ozone__ResultCode add_block(struct fixture *f,
                                   const char *key,
                                   uint64_t client_id,
                                   struct block *b)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmAddBlockOp a = OZONE__OM__OM_ADD_BLOCK_OP__INIT;

    a.volume = "vol";
    a.bucket = "bucket";
    a.key = (char *)key;
    a.client_id = client_id;
    a.location = &b->loc;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_ADD_BLOCK;
    op.add_block = &a;
    return submit(f, &op, NULL);
}

/* Commits key in vol/bucket with n locations of the given lengths on the
 * blocks (offsets computed unless offsets is given). */
static Ozone__ResultCode commit_key(struct fixture *f,
                                    const char *key,
                                    uint64_t client_id,
                                    struct block **blocks,
                                    const uint64_t *lengths,
                                    size_t n,
                                    uint64_t size,
                                    struct om_result *res)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CommitKeyRequest c = OZONE__OM__COMMIT_KEY_REQUEST__INIT;
    Ozone__Om__KeyLocation locs[4], *ptrs[4];
    Ozone__Hdds__Pipeline bogus = OZONE__HDDS__PIPELINE__INIT;
    uint64_t offset = 0;

    /* A client's pipeline is not stored: the session's is. */
    bogus.id = "client-made-up";
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        ozone__om__key_location__init(&locs[i]);
        locs[i].block_id = &blocks[i]->id;
        locs[i].pipeline = &bogus;
        locs[i].offset = offset;
        locs[i].length = lengths[i];
        offset += lengths[i];
        ptrs[i] = &locs[i];
    }
    c.volume = "vol";
    c.bucket = "bucket";
    c.key = (char *)key;
    c.client_id = client_id;
    c.data_size = size;
    c.n_locations = n;
    c.locations = ptrs;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_COMMIT_KEY;
    op.commit_key = &c;
    return submit(f, &op, res);
}

static Ozone__ResultCode delete_key(struct fixture *f, const char *key)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__DeleteKeyRequest r = OZONE__OM__DELETE_KEY_REQUEST__INIT;

    r.volume = "vol";
    r.bucket = "bucket";
    r.key = (char *)key;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_KEY;
    op.delete_key = &r;
    return submit(f, &op, NULL);
}

static Ozone__ResultCode rename_key(struct fixture *f,
                                    const char *from,
                                    const char *to)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__RenameKeyRequest r = OZONE__OM__RENAME_KEY_REQUEST__INIT;

    r.volume = "vol";
    r.bucket = "bucket";
    r.key = (char *)from;
    r.to_key = (char *)to;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_RENAME_KEY;
    op.rename_key = &r;
    return submit(f, &op, NULL);
}

/* Writes a whole key of size bytes in one block under a new session. */
static void put_key(struct fixture *f,
                    const char *key,
                    uint64_t client_id,
                    uint64_t local_id,
                    uint64_t size)
{
    struct block b;
    struct block *bs[1] = {&b};

    make_block(&b, 1, local_id, 1 << 20);
    assert_int_equal(open_key(f, "vol", "bucket", key, client_id, &b), OK);
    assert_int_equal(commit_key(f, key, client_id, bs, &size, 1, size, NULL),
                     OK);
}

static void setup_bucket(struct fixture *f)
{
    assert_int_equal(create_volume(f, "vol", "alice"), OK);
    assert_int_equal(
        create_bucket(f, "vol", "bucket", OZONE__HDDS__REPLICATION_FACTOR__ONE),
        OK);
}

static Ozone__Om__BucketInfo *get_bucket(struct fixture *f)
{
    Ozone__Om__BucketInfo *b = NULL;
    struct om_result res;

    assert_int_equal(om_get_bucket(&f->om, "vol", "bucket", NULL, &b, &res),
                     OK);
    return b;
}

/* ---- tests ---- */

static void test_volume_rules(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__VolumeInfo *v = NULL;
    struct om_result res;

    assert_int_equal(create_volume(f, "vol1", "alice"), OK);
    assert_int_equal(create_volume(f, "vol1", "bob"),
                     OZONE__RESULT_CODE__VOLUME_ALREADY_EXISTS);
    assert_int_equal(create_volume(f, "Bad_Name", "bob"),
                     OZONE__RESULT_CODE__INVALID_VOLUME_NAME);
    assert_int_equal(om_get_volume(&f->om, "vol1", NULL, &v, &res), OK);
    assert_string_equal(v->owner, "alice");
    /* Index 1 created it at the first clock tick (Ozone object ids). */
    assert_int_equal(v->update_id, 1);
    assert_int_equal(v->object_id, 1u << 8);
    assert_int_equal(v->creation_time, T0);
    om_msg_free(&v->base);

    assert_int_equal(delete_volume(f, "nosuch"),
                     OZONE__RESULT_CODE__VOLUME_NOT_FOUND);
    assert_int_equal(
        create_bucket(f, "vol1", "bk1", OZONE__HDDS__REPLICATION_FACTOR__THREE),
        OK);
    assert_int_equal(delete_volume(f, "vol1"),
                     OZONE__RESULT_CODE__VOLUME_NOT_EMPTY);
    assert_int_equal(delete_bucket(f, "vol1", "bk1"), OK);
    assert_int_equal(delete_volume(f, "vol1"), OK);
    assert_int_equal(om_get_volume(&f->om, "vol1", NULL, &v, &res),
                     OZONE__RESULT_CODE__VOLUME_NOT_FOUND);
    assert_string_equal(res.message,
                        "volume 'vol1' not found; create it first or check "
                        "the name");
}

static void test_bucket_rules(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__BucketInfo *b = NULL;
    struct om_result res;

    assert_int_equal(
        create_bucket(f, "nosuch", "bk1", OZONE__HDDS__REPLICATION_FACTOR__ONE),
        OZONE__RESULT_CODE__VOLUME_NOT_FOUND);
    setup_bucket(f);
    assert_int_equal(
        create_bucket(f, "vol", "bucket", OZONE__HDDS__REPLICATION_FACTOR__ONE),
        OZONE__RESULT_CODE__BUCKET_ALREADY_EXISTS);
    assert_int_equal(
        create_bucket(f, "vol", "b..x", OZONE__HDDS__REPLICATION_FACTOR__ONE),
        OZONE__RESULT_CODE__INVALID_BUCKET_NAME);
    assert_int_equal(
        create_bucket(f, "vol", "bk2",
                      OZONE__HDDS__REPLICATION_FACTOR__REPLICATION_UNSPECIFIED),
        OZONE__RESULT_CODE__INVALID_ARGUMENT);
    b = get_bucket(f);
    assert_string_equal(b->owner, "alice"); /* the volume owner */
    assert_int_equal(b->replication, OZONE__HDDS__REPLICATION_FACTOR__ONE);
    om_msg_free(&b->base);
    /* Missing volume is named before the missing bucket (Ozone). */
    assert_int_equal(om_get_bucket(&f->om, "nosuch", "bucket", NULL, &b, &res),
                     OZONE__RESULT_CODE__VOLUME_NOT_FOUND);
    assert_int_equal(om_get_bucket(&f->om, "vol", "nosuch", NULL, &b, &res),
                     OZONE__RESULT_CODE__BUCKET_NOT_FOUND);
    assert_int_equal(delete_bucket(f, "vol", "nosuch"),
                     OZONE__RESULT_CODE__BUCKET_NOT_FOUND);
    put_key(f, "k1", 7, 1, 10);
    assert_int_equal(delete_bucket(f, "vol", "bucket"),
                     OZONE__RESULT_CODE__BUCKET_NOT_EMPTY);
    /* A bucket whose name extends this one does not count as content. */
    assert_int_equal(
        create_bucket(f, "vol", "buck", OZONE__HDDS__REPLICATION_FACTOR__ONE),
        OK);
    assert_int_equal(delete_bucket(f, "vol", "buck"), OK);
    assert_int_equal(delete_key(f, "k1"), OK);
    assert_int_equal(delete_bucket(f, "vol", "bucket"), OK);
}

static void test_key_write_and_commit(void **state)
{
    struct fixture *f = *state;
    struct block b1, b2, stray;
    struct block *both[2] = {&b1, &b2}, *only_stray[1] = {&stray};
    uint64_t lens[2] = {1000, 234};
    Ozone__Om__KeyInfo *k = NULL;
    struct om_result res;

    setup_bucket(f);
    make_block(&b1, 5, 100, 1000);
    make_block(&b2, 6, 101, 1000);
    make_block(&stray, 9, 999, 1000);
    assert_int_equal(open_key(f, "vol", "nosuch", "k", 42, &b1),
                     OZONE__RESULT_CODE__BUCKET_NOT_FOUND);
    assert_int_equal(open_key(f, "vol", "bucket", "k", 42, &b1), OK);
    assert_int_equal(add_block(f, "k", 42, &b2), OK);
    assert_int_equal(add_block(f, "k", 43, &b2),
                     OZONE__RESULT_CODE__KEY_NOT_FOUND);
    /* Not visible before commit. */
    assert_int_equal(om_get_key(&f->om, "vol", "bucket", "k", NULL, &k, &res),
                     OZONE__RESULT_CODE__KEY_NOT_FOUND);
    /* Refused commits: unknown session, foreign block, wrong size, a
     * location longer than its block. */
    assert_int_equal(commit_key(f, "k", 43, both, lens, 2, 1234, &res),
                     OZONE__RESULT_CODE__KEY_NOT_FOUND);
    assert_non_null(strstr(res.message, "has no open write session 43"));
    assert_int_equal(commit_key(f, "k", 42, only_stray, lens, 1, 1000, &res),
                     OZONE__RESULT_CODE__INVALID_ARGUMENT);
    assert_non_null(strstr(res.message, "block 9/999 was not allocated"));
    assert_int_equal(commit_key(f, "k", 42, both, lens, 2, 1000, &res),
                     OZONE__RESULT_CODE__INVALID_ARGUMENT);
    uint64_t too_long[1] = {1001};
    assert_int_equal(commit_key(f, "k", 42, both, too_long, 1, 1001, &res),
                     OZONE__RESULT_CODE__INVALID_ARGUMENT);
    /* The good commit. */
    assert_int_equal(commit_key(f, "k", 42, both, lens, 2, 1234, &res), OK);
    assert_int_equal(om_get_key(&f->om, "vol", "bucket", "k", NULL, &k, &res),
                     OK);
    assert_int_equal(k->data_size, 1234);
    assert_int_equal(k->n_locations, 2);
    assert_int_equal(k->locations[1]->offset, 1000);
    assert_int_equal(k->locations[1]->length, 234);
    assert_int_equal(k->locations[1]->block_id->container_id, 6);
    /* The pipeline is the one SCM allocated, not the client's copy. */
    assert_non_null(k->locations[0]->pipeline);
    assert_string_equal(k->locations[0]->pipeline->id, "pipeline-1");
    assert_string_equal(k->locations[0]->pipeline->members[0]->uuid, "dn1");
    om_msg_free(&k->base);
    /* The session is gone: a retried identical commit (its answer lost
     * in a leader change) gets the same answer and changes nothing; any
     * other commit of the session is refused. */
    assert_int_equal(commit_key(f, "k", 42, both, lens, 2, 1234, &res), OK);
    assert_int_equal(commit_key(f, "k", 42, both, lens, 2, 1000, &res),
                     OZONE__RESULT_CODE__KEY_NOT_FOUND);
    assert_int_equal(commit_key(f, "k", 42, both, lens, 1, 1000, &res),
                     OZONE__RESULT_CODE__KEY_NOT_FOUND);
    Ozone__Om__BucketInfo *b = get_bucket(f);
    assert_int_equal(b->used_bytes, 1234);
    assert_int_equal(b->used_namespace, 1);
    om_msg_free(&b->base);
}

static void test_commit_replaces(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__KeyInfo *k = NULL;
    struct om_result res;

    setup_bucket(f);
    put_key(f, "k", 1, 10, 500);
    put_key(f, "k", 2, 11, 70);
    assert_int_equal(om_get_key(&f->om, "vol", "bucket", "k", NULL, &k, &res),
                     OK);
    assert_int_equal(k->data_size, 70);
    assert_int_equal(k->locations[0]->block_id->local_id, 11);
    om_msg_free(&k->base);
    Ozone__Om__BucketInfo *b = get_bucket(f);
    assert_int_equal(b->used_bytes, 70);
    assert_int_equal(b->used_namespace, 1);
    om_msg_free(&b->base);
}

static void test_rename_and_delete(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__KeyInfo *k = NULL;
    struct om_result res;

    setup_bucket(f);
    put_key(f, "a", 1, 1, 11);
    put_key(f, "b", 2, 2, 22);
    assert_int_equal(rename_key(f, "nosuch", "c"),
                     OZONE__RESULT_CODE__KEY_NOT_FOUND);
    assert_int_equal(rename_key(f, "a", "b"),
                     OZONE__RESULT_CODE__KEY_ALREADY_EXISTS);
    assert_int_equal(rename_key(f, "a", ""),
                     OZONE__RESULT_CODE__INVALID_KEY_NAME);
    assert_int_equal(rename_key(f, "a", "dir/c"), OK);
    assert_int_equal(om_get_key(&f->om, "vol", "bucket", "a", NULL, &k, &res),
                     OZONE__RESULT_CODE__KEY_NOT_FOUND);
    assert_int_equal(
        om_get_key(&f->om, "vol", "bucket", "dir/c", NULL, &k, &res), OK);
    assert_string_equal(k->name, "dir/c");
    assert_int_equal(k->data_size, 11);
    om_msg_free(&k->base);
    assert_int_equal(delete_key(f, "a"), OZONE__RESULT_CODE__KEY_NOT_FOUND);
    assert_int_equal(delete_key(f, "dir/c"), OK);
    assert_int_equal(delete_key(f, "b"), OK);
    Ozone__Om__BucketInfo *b = get_bucket(f);
    assert_int_equal(b->used_bytes, 0);
    assert_int_equal(b->used_namespace, 0);
    om_msg_free(&b->base);
}

/* Names of a list page joined by ',' into out. */
static size_t list_names(struct fixture *f,
                         enum om_table t,
                         const char *parent,
                         const char *prefix,
                         const char *after,
                         uint32_t max,
                         char *out,
                         size_t size)
{
    ProtobufCMessage **items = NULL;
    size_t n = 0, len = 0;

    assert_int_equal(
        om_list(&f->om, t, parent, prefix, after, max,
                t == OM_KEY_TABLE ? &ozone__om__key_info__descriptor
                                  : &ozone__om__bucket_info__descriptor,
                NULL, &items, &n),
        0);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name = t == OM_KEY_TABLE
                               ? ((Ozone__Om__KeyInfo *)items[i])->name
                               : ((Ozone__Om__BucketInfo *)items[i])->name;
        len +=
            (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "", name);
        om_msg_free(items[i]);
    }
    free(items);
    return n;
}

static void test_list_paging(void **state)
{
    struct fixture *f = *state;
    char names[512], key[16];

    setup_bucket(f);
    for (int i = 0; i < 12; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        put_key(f, key, (uint64_t)i + 1, (uint64_t)i + 1, 1);
    }
    put_key(f, "other", 100, 100, 1);
    assert_int_equal(list_names(f, OM_KEY_TABLE, "/vol/bucket/", "k", "", 5,
                                names, sizeof(names)),
                     5);
    assert_string_equal(names, "k00,k01,k02,k03,k04");
    assert_int_equal(list_names(f, OM_KEY_TABLE, "/vol/bucket/", "k", "k04", 5,
                                names, sizeof(names)),
                     5);
    assert_string_equal(names, "k05,k06,k07,k08,k09");
    assert_int_equal(list_names(f, OM_KEY_TABLE, "/vol/bucket/", "k", "k09", 5,
                                names, sizeof(names)),
                     2);
    assert_string_equal(names, "k10,k11");
    assert_int_equal(list_names(f, OM_KEY_TABLE, "/vol/bucket/", "k", "k11", 5,
                                names, sizeof(names)),
                     0);
    /* start_after before the prefix range, and between keys. */
    assert_int_equal(list_names(f, OM_KEY_TABLE, "/vol/bucket/", "k", "a", 2,
                                names, sizeof(names)),
                     2);
    assert_string_equal(names, "k00,k01");
    assert_int_equal(list_names(f, OM_KEY_TABLE, "/vol/bucket/", "", "k10x", 0,
                                names, sizeof(names)),
                     2);
    assert_string_equal(names, "k11,other");
    /* Buckets of volume "vol" do not include those of volume "vol2". */
    assert_int_equal(create_volume(f, "vol2", "bob"), OK);
    assert_int_equal(
        create_bucket(f, "vol2", "zzz", OZONE__HDDS__REPLICATION_FACTOR__ONE),
        OK);
    assert_int_equal(create_bucket(f, "vol", "bucket2",
                                   OZONE__HDDS__REPLICATION_FACTOR__ONE),
                     OK);
    assert_int_equal(list_names(f, OM_BUCKET_TABLE, "/vol/", "", "", 0, names,
                                sizeof(names)),
                     2);
    assert_string_equal(names, "bucket,bucket2");
}

static void test_list_cap(void **state)
{
    struct fixture *f = *state;
    struct kv_batch *b = kv_batch_new();
    char errmsg[OZ_ERRMSG_SIZE];
    char name[16], k[OM_DB_KEY_MAX];
    ProtobufCMessage **items = NULL;
    size_t n = 0;

    for (int i = 0; i < OM_LIST_MAX + 5; i++) {
        Ozone__Om__VolumeInfo v = OZONE__OM__VOLUME_INFO__INIT;
        snprintf(name, sizeof(name), "v%05d", i);
        v.name = name;
        om_db_put(&f->om, b, OM_VOLUME_TABLE, k, om_volume_key(k, name),
                  &v.base);
    }
    assert_int_equal(kv_write(f->kv, b, false, errmsg), 0);
    kv_batch_free(b);
    for (uint32_t max = 0; max <= 5000; max += 5000) {
        assert_int_equal(
            om_list(&f->om, OM_VOLUME_TABLE, "/", "", "", max,
                    &ozone__om__volume_info__descriptor, NULL, &items, &n),
            0);
        assert_int_equal(n, OM_LIST_MAX);
        assert_string_equal(((Ozone__Om__VolumeInfo *)items[999])->name,
                            "v00999");
        for (size_t i = 0; i < n; i++) {
            om_msg_free(items[i]);
        }
        free(items);
    }
}

static void test_replay_is_noop(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CreateVolumeRequest r = OZONE__OM__CREATE_VOLUME_REQUEST__INIT;
    Ozone__Om__VolumeInfo v = OZONE__OM__VOLUME_INFO__INIT;
    Ozone__Om__VolumeInfo *got = NULL;
    struct om_result res;
    uint64_t applied = 0;

    v.name = "replayed";
    v.owner = "alice";
    r.volume = &v;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME;
    op.create_volume = &r;
    op.index = 5;
    assert_int_equal(submit(f, &op, &res), OK);
    assert_false(res.replayed);
    assert_int_equal(om_read_applied_index(&f->om, &applied), 0);
    assert_int_equal(applied, 5);
    /* Without a replay check the second apply would answer
     * VOLUME_ALREADY_EXISTS; with it nothing happens at all. */
    struct kv_batch *b = kv_batch_new();
    om_apply(&f->om, &op, b, &res);
    assert_true(res.replayed);
    assert_int_equal(res.code, OK);
    assert_int_equal(kv_batch_count(b), 0);
    kv_batch_free(b);
    /* Index 6 deletes it; replaying 5 (and an older 3) must not bring it
     * back. */
    assert_int_equal(delete_volume(f, "replayed"), OK);
    assert_int_equal(submit(f, &op, &res), OK);
    assert_true(res.replayed);
    op.index = 3;
    assert_int_equal(submit(f, &op, &res), OK);
    assert_true(res.replayed);
    assert_int_equal(om_get_volume(&f->om, "replayed", NULL, &got, &res),
                     OZONE__RESULT_CODE__VOLUME_NOT_FOUND);
    /* A refused op still advances the applied index, and it persists. */
    assert_int_equal(delete_volume(f, "replayed"),
                     OZONE__RESULT_CODE__VOLUME_NOT_FOUND);
    assert_int_equal(om_read_applied_index(&f->om, &applied), 0);
    assert_int_equal(applied, 7);
    close_db(f);
    open_db(f);
    assert_int_equal(f->om.applied_index, 7);
    assert_int_equal(create_volume(f, "after", "bob"), OK);
    assert_int_equal(om_read_applied_index(&f->om, &applied), 0);
    assert_int_equal(applied, 8);
}

/* The value of a metaTable key ("" with false when absent). */
static bool meta_value(struct fixture *f,
                       const char *key,
                       char *out,
                       size_t size)
{
    void *val = NULL;
    size_t len = 0;

    out[0] = '\0';
    if (kv_get(f->kv, f->om.cf[OM_META_TABLE], key, strlen(key), &val, &len) !=
        0) {
        return false;
    }
    snprintf(out, size, "%.*s", (int)len, (const char *)val);
    free(val);
    return true;
}

static Ozone__ResultCode start_finalization(struct fixture *f,
                                            uint32_t target,
                                            const char *who)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmStartFinalizationOp s =
        OZONE__OM__OM_START_FINALIZATION_OP__INIT;

    s.target_version = target;
    s.requested_by = (char *)who;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_START_FINALIZATION;
    op.start_finalization = &s;
    return submit(f, &op, NULL);
}

/* DESIGN.md §6.7 step 3: the marker and who asked for the finalization
 * are one batch; the finalize entry removes the marker and keeps who
 * asked; starting again when finalized changes nothing. */
static void test_finalization_records_requester(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmFinalizeOp fin = OZONE__OM__OM_FINALIZE_OP__INIT;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char long_who[OM_REQUESTED_BY_MAX * 2];
    char v[OM_REQUESTED_BY_MAX * 2];
    int layout = 0;

    struct kv_batch *b = kv_batch_new();
    kv_batch_put_layout_version(f->kv, b, 100);
    assert_int_equal(kv_write(f->kv, b, true, errmsg), 0);
    kv_batch_free(b);
    assert_false(meta_value(f, OM_FINALIZATION_REQUESTED_BY_KEY, v, sizeof(v)));

    assert_int_equal(start_finalization(f, 102, "ozone admin upgrade finalize"),
                     OK);
    assert_true(meta_value(f, OM_FINALIZATION_MARKER_KEY, v, sizeof(v)));
    assert_string_equal(v, "102");
    assert_true(meta_value(f, OM_FINALIZATION_REQUESTED_BY_KEY, v, sizeof(v)));
    assert_string_equal(v, "ozone admin upgrade finalize");

    fin.target_version = 102;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_FINALIZE;
    op.finalize = &fin;
    assert_int_equal(submit(f, &op, NULL), OK);
    assert_int_equal(om_read_layout_version(&f->om, &layout), 0);
    assert_int_equal(layout, 102);
    assert_false(meta_value(f, OM_FINALIZATION_MARKER_KEY, v, sizeof(v)));
    assert_true(meta_value(f, OM_FINALIZATION_REQUESTED_BY_KEY, v, sizeof(v)));
    assert_string_equal(v, "ozone admin upgrade finalize");

    /* Already finalized (a replay, a second finalize): a no-op. */
    assert_int_equal(start_finalization(f, 102, "someone else"), OK);
    assert_false(meta_value(f, OM_FINALIZATION_MARKER_KEY, v, sizeof(v)));
    assert_true(meta_value(f, OM_FINALIZATION_REQUESTED_BY_KEY, v, sizeof(v)));
    assert_string_equal(v, "ozone admin upgrade finalize");

    /* The next finalization replaces it; a value from the network is cut
     * at OM_REQUESTED_BY_MAX - 1 bytes, the same on every OM. */
    memset(long_who, 'x', sizeof(long_who) - 1);
    long_who[sizeof(long_who) - 1] = '\0';
    assert_int_equal(start_finalization(f, 103, long_who), OK);
    assert_true(meta_value(f, OM_FINALIZATION_REQUESTED_BY_KEY, v, sizeof(v)));
    assert_int_equal(strlen(v), OM_REQUESTED_BY_MAX - 1);
    /* An entry from before the field: nobody, not the last requester. */
    assert_int_equal(start_finalization(f, 103, ""), OK);
    assert_true(meta_value(f, OM_FINALIZATION_REQUESTED_BY_KEY, v, sizeof(v)));
    assert_string_equal(v, "");
}

static void test_write_failure(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CreateVolumeRequest r = OZONE__OM__CREATE_VOLUME_REQUEST__INIT;
    Ozone__Om__VolumeInfo v = OZONE__OM__VOLUME_INFO__INIT;
    Ozone__Om__VolumeInfo *got = NULL;
    struct om_result res;
    uint64_t applied = 0;

    assert_int_equal(create_volume(f, "first", "alice"), OK);
    v.name = "lost";
    r.volume = &v;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME;
    op.create_volume = &r;
    /* The batch cannot be written: the caller hears it, nothing changed,
     * and the index is not consumed. */
    fault_set("om.submit.write", FAULT_ERROR);
    assert_int_equal(om_submit(&f->om, &op, &res), OZ_EFAULT);
    fault_clear_all();
    assert_int_equal(res.code, OZONE__RESULT_CODE__INTERNAL_ERROR);
    assert_non_null(strstr(res.message, "cannot write to the OM metadata DB"));
    assert_int_equal(om_get_volume(&f->om, "lost", NULL, &got, &res),
                     OZONE__RESULT_CODE__VOLUME_NOT_FOUND);
    assert_int_equal(om_read_applied_index(&f->om, &applied), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(f->om.applied_index, 1);
    assert_int_equal(create_volume(f, "second", "alice"), OK);
    assert_int_equal(f->om.applied_index, 2);
}

/* FNV-1a over every entry of every table. */
static uint64_t digest(struct fixture *f)
{
    uint64_t h = 1469598103934665603ull;

    for (int t = 0; t < OM_TABLE_COUNT; t++) {
        struct kv_iter *it = kv_iter_new(f->kv, f->om.cf[t]);
        assert_non_null(it);
        for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
            size_t kl = 0, vl = 0;
            const unsigned char *k = kv_iter_key(it, &kl);
            const unsigned char *v = kv_iter_value(it, &vl);
            for (size_t i = 0; i < kl; i++) {
                h = (h ^ k[i]) * 1099511628211ull;
            }
            for (size_t i = 0; i < vl; i++) {
                h = (h ^ v[i]) * 1099511628211ull;
            }
            h = (h ^ (uint64_t)t) * 1099511628211ull;
        }
        kv_iter_free(it);
    }
    return h;
}

static void run_workload(struct fixture *f)
{
    setup_bucket(f);
    put_key(f, "a", 1, 1, 10);
    put_key(f, "b", 2, 2, 20);
    put_key(f, "a", 3, 3, 30);
    assert_int_equal(rename_key(f, "b", "c"), OK);
    assert_int_equal(delete_key(f, "a"), OK);
    assert_int_equal(create_volume(f, "vol", "x"),
                     OZONE__RESULT_CODE__VOLUME_ALREADY_EXISTS);
}

static void test_deterministic(void **state)
{
    struct fixture *f = *state;
    struct fixture *g = NULL;
    uint64_t h1;

    run_workload(f);
    h1 = digest(f);
    assert_int_equal(setup((void **)&g), 0);
    run_workload(g);
    assert_true(h1 == digest(g));
    /* A different time in one op gives a different state: the digest
     * sees the values. */
    g->clock_ms += 1;
    assert_int_equal(create_volume(g, "extra", "x"), OK);
    assert_int_equal(create_volume(f, "extra", "x"), OK);
    assert_false(digest(f) == digest(g));
    teardown((void **)&g);
}

/* ---- #TRANSACTIONINFO term and the double buffer ---- */

/* CreateVolume "v<i>" at raft index i and term, time T0 + i. */
static int apply_volume_at(struct fixture *f,
                           uint64_t i,
                           uint64_t term,
                           bool sync,
                           struct om_result *res)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CreateVolumeRequest r = OZONE__OM__CREATE_VOLUME_REQUEST__INIT;
    Ozone__Om__VolumeInfo v = OZONE__OM__VOLUME_INFO__INIT;
    char name[32];

    snprintf(name, sizeof(name), "v%03llu", (unsigned long long)i);
    v.name = name;
    v.owner = "alice";
    r.volume = &v;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME;
    op.create_volume = &r;
    op.index = i;
    op.time_ms = T0 + i;
    return om_apply_write(&f->om, &op, term, sync, res);
}

static void test_transaction_info_term(void **state)
{
    struct fixture *f = *state;
    struct om_result res;
    uint64_t term = 0, index = 0;

    assert_int_equal(apply_volume_at(f, 1, 3, false, &res), 0);
    assert_int_equal(res.code, OK);
    assert_int_equal(om_read_transaction_info(&f->om, &term, &index), 0);
    assert_int_equal(term, 3);
    assert_int_equal(index, 1);
    /* A refused op stores its term and index too. */
    assert_int_equal(apply_volume_at(f, 1, 3, false, &res), 0);
    assert_true(res.replayed);
    assert_int_equal(apply_volume_at(f, 7, 5, false, &res), 0);
    assert_int_equal(om_read_transaction_info(&f->om, &term, &index), 0);
    assert_int_equal(term, 5);
    assert_int_equal(index, 7);
    close_db(f);
    open_db(f);
    assert_int_equal(om_read_transaction_info(&f->om, &term, &index), 0);
    assert_int_equal(term, 5);
    assert_int_equal(index, 7);
    assert_int_equal(f->om.applied_index, 7);
}

/* Entries are visible once applied, written by a flush (here explicit:
 * the flusher waits a minute), and a stop flushes the rest. */
static void test_double_buffer(void **state)
{
    struct fixture *f = *state;
    struct om_buffer_config cfg = {1000, 60000};
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct kv_overlay_stats st;
    struct om_result res;
    Ozone__Om__VolumeInfo *got = NULL;
    uint64_t seq, term = 0, index = 0;

    assert_int_equal(om_buffer_start(&f->om, &cfg, errmsg), 0);
    seq = kv_latest_sequence(f->kv);
    for (uint64_t i = 1; i <= 20; i++) {
        assert_int_equal(apply_volume_at(f, i, 2, false, &res), 0);
        assert_int_equal(res.code, OK);
    }
    /* Applied and readable, not written. */
    assert_int_equal(kv_latest_sequence(f->kv), seq);
    assert_int_equal(om_get_volume(&f->om, "v020", NULL, &got, &res), OK);
    om_msg_free(&got->base);
    assert_int_equal(f->om.applied_index, 20);
    assert_int_equal(om_buffer_flushed_index(&f->om), 0);
    kv_overlay_pending(f->kv, &st);
    assert_int_equal(st.batches, 20);
    assert_int_equal(st.last_tag, 20);
    /* Replays are checked against the applied state, not the flushed. */
    assert_int_equal(apply_volume_at(f, 20, 2, false, &res), 0);
    assert_true(res.replayed);
    assert_int_equal(om_buffer_flush(&f->om, false, errmsg), 0);
    assert_int_equal(om_buffer_flushed_index(&f->om), 20);
    assert_true(kv_latest_sequence(f->kv) > seq);
    kv_overlay_pending(f->kv, &st);
    assert_int_equal(st.batches, 0);
    /* A synced apply (prepare) is flushed before it returns. */
    assert_int_equal(apply_volume_at(f, 21, 2, true, &res), 0);
    assert_int_equal(om_buffer_flushed_index(&f->om), 21);
    assert_int_equal(apply_volume_at(f, 22, 4, false, &res), 0);
    om_buffer_stop(&f->om);
    assert_null(f->om.buffer);
    close_db(f);
    open_db(f);
    assert_int_equal(om_read_transaction_info(&f->om, &term, &index), 0);
    assert_int_equal(index, 22);
    assert_int_equal(term, 4);
}

/* The flusher thread writes on its own: by count and by time. */
static void test_double_buffer_flusher(void **state)
{
    struct fixture *f = *state;
    struct om_buffer_config cfg = {8, 20};
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct om_result res;

    assert_int_equal(om_buffer_start(&f->om, &cfg, errmsg), 0);
    for (uint64_t i = 1; i <= 50; i++) {
        assert_int_equal(apply_volume_at(f, i, 1, false, &res), 0);
    }
    for (int waited = 0; om_buffer_flushed_index(&f->om) < 50; waited++) {
        assert_true(waited < 500);
        usleep(10000);
    }
    om_buffer_stop(&f->om);
}

static uint64_t digest(struct fixture *f);

static Ozone__ResultCode delete_open_keys(struct fixture *f,
                                          const uint64_t *clients,
                                          size_t n,
                                          uint64_t before_ms,
                                          struct om_result *res)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmDeleteOpenKeysOp d = OZONE__OM__OM_DELETE_OPEN_KEYS_OP__INIT;
    Ozone__Om__OmOpenKeyRef refs[4], *ptrs[4];

    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        ozone__om__om_open_key_ref__init(&refs[i]);
        refs[i].volume = "vol";
        refs[i].bucket = "bucket";
        refs[i].key = "k";
        refs[i].client_id = clients[i];
        ptrs[i] = &refs[i];
    }
    d.keys = ptrs;
    d.n_keys = n;
    d.expire_before_ms = before_ms;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_OPEN_KEYS;
    op.delete_open_keys = &d;
    return submit(f, &op, res);
}

static bool open_key_exists(struct fixture *f, uint64_t client)
{
    Ozone__Om__KeyInfo *k = NULL;
    struct om_result res;

    if (om_get_open_key(&f->om, "vol", "bucket", "k", client, NULL, &k, &res) !=
        OK) {
        return false;
    }
    om_msg_free(&k->base);
    return true;
}

/* DeleteOpenKeys (the open key cleanup's entry) deletes only named keys
 * that are still open and older than its cut-off; a committed session and
 * the committed key are left alone. */
static void test_delete_open_keys(void **state)
{
    struct fixture *f = *state;
    struct block b1, b2, b3;
    struct block *bs[1] = {&b3};
    uint64_t size = 10;
    struct om_result res;
    Ozone__Om__KeyInfo *k = NULL;
    uint64_t cut;

    setup_bucket(f);
    make_block(&b1, 1, 1, 1 << 20);
    make_block(&b2, 1, 2, 1 << 20);
    make_block(&b3, 1, 3, 1 << 20);
    /* Two abandoned sessions (a retried CreateKey), then one committed. */
    assert_int_equal(open_key(f, "vol", "bucket", "k", 101, &b1), OK);
    assert_int_equal(open_key(f, "vol", "bucket", "k", 102, &b2), OK);
    cut = f->clock_ms; /* 101 and 102 were opened before this time */
    assert_int_equal(open_key(f, "vol", "bucket", "k", 103, &b3), OK);
    assert_int_equal(commit_key(f, "k", 103, bs, &size, 1, size, NULL), OK);
    assert_int_equal(open_key(f, "vol", "bucket", "k", 104, &b1), OK);
    const uint64_t clients[] = {101, 102, 103, 104};
    assert_int_equal(delete_open_keys(f, clients, 4, cut, &res), OK);
    assert_non_null(strstr(res.message, "deleted 2 of 4"));
    assert_false(open_key_exists(f, 101));
    assert_false(open_key_exists(f, 102));
    assert_true(open_key_exists(f, 104)); /* younger than the cut-off */
    assert_int_equal(om_get_key(&f->om, "vol", "bucket", "k", NULL, &k, &res),
                     OK);
    assert_int_equal(k->data_size, 10);
    om_msg_free(&k->base);
    /* Again: nothing left to delete, still OK (idempotent on replay). */
    assert_int_equal(delete_open_keys(f, clients, 2, cut, &res), OK);
    assert_non_null(strstr(res.message, "deleted 0 of 2"));
}

/* A crash (here: _exit in a child process) loses only unflushed entries;
 * applying the "raft log" again gives the state of a run without crash. */
static void test_double_buffer_crash(void **state)
{
    struct fixture *f = *state;
    struct fixture *ref = NULL;
    struct om_result res;
    uint64_t term = 0, index = 0;
    int status = 0;
    pid_t pid;

    close_db(f);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct om_buffer_config cfg = {100000, 600000};
        char errmsg[OZ_ERRMSG_SIZE] = "";
        open_db(f);
        if (om_buffer_start(&f->om, &cfg, errmsg) != 0) {
            _exit(2);
        }
        for (uint64_t i = 1; i <= 60; i++) {
            if (apply_volume_at(f, i, 1 + i / 30, false, &res) != 0) {
                _exit(3);
            }
            if (i == 40 && om_buffer_flush(&f->om, false, errmsg) != 0) {
                _exit(4);
            }
        }
        _exit(0); /* 41..60 were applied and are lost */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    open_db(f);
    assert_int_equal(om_read_transaction_info(&f->om, &term, &index), 0);
    assert_int_equal(index, 40);
    assert_int_equal(term, 2);
    for (uint64_t i = 1; i <= 60; i++) {
        assert_int_equal(apply_volume_at(f, i, 1 + i / 30, false, &res), 0);
        assert_true(res.replayed == (i <= 40));
    }
    assert_int_equal(setup((void **)&ref), 0);
    for (uint64_t i = 1; i <= 60; i++) {
        assert_int_equal(apply_volume_at(ref, i, 1 + i / 30, false, &res), 0);
    }
    assert_true(digest(f) == digest(ref));
    teardown((void **)&ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_volume_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_write_and_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_commit_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_and_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_is_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalization_records_requester,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_info_term, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_double_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_double_buffer_flusher, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_double_buffer_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delete_open_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
