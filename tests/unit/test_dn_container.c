/* Unit tests of the datanode's container store (services/datanode) against
 * a temporary directory and a real RocksDB: chunks, blocks, durability
 * across a reopen, corruption detection, container states, the start-up
 * consistency check and the validation of every client-given length. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "dn_internal.h"
#include "err.h"
#include "kv.h"
#include "test_tmpdir.h"

#define MAX_CHUNK 4096

struct fixture
{
    char dir[64];
    char db[128];
    char vol[2][128];
    size_t n_vols;
    struct kv *kv;
    struct dn_store *s;
};

static void open_store(struct fixture *f)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    const char *dirs[2] = {f->vol[0], f->vol[1]};
    struct dn_store_config cfg = {
        .data_dirs = dirs,
        .n_data_dirs = f->n_vols,
        .cluster_id = "CID-test",
        .node_id = "dn-test",
        .max_chunk_bytes = MAX_CHUNK,
    };

    int rc = kv_open(&f->kv, f->db, dn_kv_cfs, DN_N_KV_CFS, KV_CREATE, errmsg);
    assert_int_equal(rc, 0);
    rc = dn_store_open(&f->s, f->kv, &cfg, errmsg);
    if (rc != 0) {
        fail_msg("dn_store_open: %s", errmsg);
    }
}

static void close_store(struct fixture *f)
{
    dn_store_close(f->s);
    f->s = NULL;
    kv_close(f->kv);
    f->kv = NULL;
}

static int setup_n(void **state, size_t n_vols)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_dn.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    for (size_t i = 0; i < n_vols; i++) {
        snprintf(f->vol[i], sizeof(f->vol[i]), "%s/vol%zu", f->dir, i);
    }
    f->n_vols = n_vols;
    open_store(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_n(state, 1);
}

static int setup_two(void **state)
{
    return setup_n(state, 2);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close_store(f);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
    }
}

static void chunk_info(Ozone__Datanode__ChunkInfo *ch,
                       uint64_t off,
                       const uint8_t *data,
                       size_t len)
{
    ozone__datanode__chunk_info__init(ch);
    ch->name = "chunk";
    ch->offset = off;
    ch->length = len;
    ch->checksum_type = OZONE__DATANODE__CHECKSUM_TYPE__CRC32C;
    ch->checksum = crc32c(0, data, len);
}

static int write_chunk(struct fixture *f,
                       uint64_t cid,
                       uint64_t lid,
                       uint64_t off,
                       const uint8_t *data,
                       size_t len,
                       struct dn_result *res)
{
    Ozone__Hdds__BlockID bid = OZONE__HDDS__BLOCK_ID__INIT;
    Ozone__Datanode__ChunkInfo ch;

    bid.container_id = cid;
    bid.local_id = lid;
    chunk_info(&ch, off, data, len);
    return dn_store_write_chunk(f->s, &bid, &ch, data, len, "pipe-1", res);
}

/* A block of n chunks of sizes[i] bytes written from data. */
struct block
{
    Ozone__Hdds__BlockID bid;
    Ozone__Datanode__ChunkInfo chunks[8];
    Ozone__Datanode__ChunkInfo *ptrs[8];
    Ozone__Datanode__BlockData bd;
};

static void make_block(struct block *b,
                       uint64_t cid,
                       uint64_t lid,
                       const uint8_t *data,
                       const size_t *sizes,
                       size_t n)
{
    uint64_t off = 0;

    ozone__hdds__block_id__init(&b->bid);
    b->bid.container_id = cid;
    b->bid.local_id = lid;
    ozone__datanode__block_data__init(&b->bd);
    b->bd.block_id = &b->bid;
    for (size_t i = 0; i < n; i++) {
        chunk_info(&b->chunks[i], off, data + off, sizes[i]);
        b->ptrs[i] = &b->chunks[i];
        off += sizes[i];
    }
    b->bd.chunks = b->ptrs;
    b->bd.n_chunks = n;
    b->bd.size = off;
}

static void write_block(struct fixture *f,
                        struct block *b,
                        const uint8_t *data,
                        const size_t *sizes,
                        size_t n)
{
    struct dn_result res;
    uint64_t committed = 0;

    make_block(b, b->bid.container_id, b->bid.local_id, data, sizes, n);
    for (size_t i = 0; i < n; i++) {
        int rc = write_chunk(f, b->bid.container_id, b->bid.local_id,
                             b->chunks[i].offset, data + b->chunks[i].offset,
                             sizes[i], &res);
        if (rc != 0) {
            fail_msg("write chunk %zu: %s", i, res.msg);
        }
    }
    if (dn_store_put_block(f->s, &b->bd, &committed, &res) != 0) {
        fail_msg("put block: %s", res.msg);
    }
    assert_int_equal(committed, b->bd.size);
}

static int read_range(struct fixture *f,
                      uint64_t cid,
                      uint64_t lid,
                      uint64_t off,
                      uint8_t *buf,
                      size_t len,
                      struct dn_result *res)
{
    Ozone__Hdds__BlockID bid = OZONE__HDDS__BLOCK_ID__INIT;
    Ozone__Datanode__ChunkInfo ch = OZONE__DATANODE__CHUNK_INFO__INIT;

    bid.container_id = cid;
    bid.local_id = lid;
    ch.offset = off;
    ch.length = len;
    return dn_store_read_chunk(f->s, &bid, &ch, buf, res);
}

static void block_file(struct fixture *f,
                       size_t vol,
                       uint64_t cid,
                       uint64_t lid,
                       char *out,
                       size_t size)
{
    snprintf(out, size, "%s/hdds/CID-test/containers/%llu/chunks/%llu.block",
             f->vol[vol], (unsigned long long)cid, (unsigned long long)lid);
}

static void container_counts(struct fixture *f,
                             uint64_t cid,
                             Ozone__Hdds__ContainerState *st,
                             uint64_t *used,
                             uint64_t *blocks)
{
    Ozone__Hdds__ContainerReplicaReport r;
    struct dn_container *c = dn_store_find(f->s, cid);

    assert_non_null(c);
    dn_container_report(c, &r);
    *st = r.state;
    *used = r.used_bytes;
    *blocks = r.block_count;
}

/* ---- tests ---- */

static void test_write_put_reopen_read(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[3] = {MAX_CHUNK, 1000, 17};
    uint8_t data[MAX_CHUNK + 1017], back[MAX_CHUNK];
    struct block b = {.bid = {.container_id = 5, .local_id = 42}};
    struct dn_result res;
    Ozone__Hdds__ContainerState st;
    uint64_t used, blocks;

    fill(data, sizeof(data), 1);
    write_block(f, &b, data, sizes, 3);
    container_counts(f, 5, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN);
    assert_int_equal(used, sizeof(data));
    assert_int_equal(blocks, 1);

    close_store(f);
    open_store(f);

    container_counts(f, 5, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN);
    assert_int_equal(used, sizeof(data));
    assert_int_equal(blocks, 1);
    Ozone__Datanode__BlockData *bd = NULL;
    assert_int_equal(dn_store_get_block(f->s, &b.bid, NULL, &bd, &res), 0);
    assert_int_equal(bd->n_chunks, 3);
    assert_int_equal(bd->size, sizeof(data));
    uint64_t off = 0;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(bd->chunks[i]->offset, off);
        assert_int_equal(read_range(f, 5, 42, off, back, sizes[i], &res), 0);
        assert_memory_equal(back, data + off, sizes[i]);
        off += sizes[i];
    }
    ozone__datanode__block_data__free_unpacked(bd, NULL);
    /* A part of a chunk is verified whole and returned in part. */
    assert_int_equal(read_range(f, 5, 42, 100, back, 50, &res), 0);
    assert_memory_equal(back, data + 100, 50);
    /* A range across two chunks is not one chunk. */
    assert_int_equal(read_range(f, 5, 42, MAX_CHUNK - 10, back, 20, &res),
                     OZ_ENOTFOUND);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CHUNK_NOT_FOUND);
    /* Beyond the committed data. */
    assert_int_not_equal(read_range(f, 5, 42, sizeof(data), back, 1, &res), 0);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CHUNK_NOT_FOUND);
}

static void test_unknown_block_and_container(void **state)
{
    struct fixture *f = *state;
    Ozone__Hdds__BlockID bid = OZONE__HDDS__BLOCK_ID__INIT;
    Ozone__Datanode__BlockData *bd = NULL;
    struct dn_result res;
    uint8_t buf[16];

    bid.container_id = 9;
    bid.local_id = 1;
    assert_int_equal(dn_store_get_block(f->s, &bid, NULL, &bd, &res),
                     OZ_ENOTFOUND);
    assert_int_equal(res.code, OZONE__RESULT_CODE__BLOCK_NOT_FOUND);
    assert_non_null(strstr(res.msg, "9/1"));
    assert_int_equal(read_range(f, 9, 1, 0, buf, sizeof(buf), &res),
                     OZ_ENOTFOUND);
    assert_int_equal(res.code, OZONE__RESULT_CODE__BLOCK_NOT_FOUND);
}

static void test_corruption_detected(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[2] = {1000, 1000};
    uint8_t data[2000], back[1000];
    struct block b = {.bid = {.container_id = 3, .local_id = 7}};
    struct dn_result res;
    char path[512];

    fill(data, sizeof(data), 2);
    write_block(f, &b, data, sizes, 2);
    block_file(f, 0, 3, 7, path, sizeof(path));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 1500), 1);
    byte ^= 0x01;
    assert_int_equal(pwrite(fd, &byte, 1, 1500), 1);
    close(fd);

    /* First chunk intact, second corrupt: never returned. */
    assert_int_equal(read_range(f, 3, 7, 0, back, 1000, &res), 0);
    assert_memory_equal(back, data, 1000);
    assert_int_equal(read_range(f, 3, 7, 1000, back, 1000, &res), OZ_ECORRUPT);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CHECKSUM_MISMATCH);
    assert_non_null(strstr(res.msg, "is corrupt"));
    assert_non_null(strstr(res.msg, "3/7"));
    /* Also a part of the corrupt chunk that does not hold the bad byte. */
    assert_int_equal(read_range(f, 3, 7, 1000, back, 10, &res), OZ_ECORRUPT);

    /* A truncated file is corrupt too. */
    assert_int_equal(truncate(path, 1200), 0);
    assert_int_equal(read_range(f, 3, 7, 1000, back, 1000, &res), OZ_ECORRUPT);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CHECKSUM_MISMATCH);
}

static void test_checksum_refused_on_write(void **state)
{
    struct fixture *f = *state;
    Ozone__Hdds__BlockID bid = OZONE__HDDS__BLOCK_ID__INIT;
    Ozone__Datanode__ChunkInfo ch;
    struct dn_result res;
    uint8_t data[100];

    fill(data, sizeof(data), 3);
    bid.container_id = 1;
    bid.local_id = 1;
    chunk_info(&ch, 0, data, sizeof(data));
    ch.checksum ^= 1;
    assert_int_equal(
        dn_store_write_chunk(f->s, &bid, &ch, data, sizeof(data), "p", &res),
        OZ_ECORRUPT);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CHECKSUM_MISMATCH);
    /* Nothing was created. */
    assert_null(dn_store_find(f->s, 1));
}

static void test_not_open_after_close(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[1] = {500};
    uint8_t data[1000];
    struct block b = {.bid = {.container_id = 11, .local_id = 1}};
    struct dn_result res;
    Ozone__Hdds__ContainerState st;
    uint64_t used, blocks, committed;

    fill(data, sizeof(data), 4);
    write_block(f, &b, data, sizes, 1);
    /* Written but not committed: made durable by the close. */
    assert_int_equal(write_chunk(f, 11, 2, 0, data, 300, &res), 0);
    assert_int_equal(dn_store_close_container(f->s, 11, &res), 0);
    container_counts(f, 11, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED);

    assert_int_equal(write_chunk(f, 11, 3, 0, data, 10, &res), OZ_ESTATE);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CONTAINER_NOT_OPEN);
    assert_non_null(strstr(res.msg, "CLOSED"));
    struct block b2 = {.bid = {.container_id = 11, .local_id = 2}};
    make_block(&b2, 11, 2, data, (const size_t[]){300}, 1);
    assert_int_equal(dn_store_put_block(f->s, &b2.bd, &committed, &res),
                     OZ_ESTATE);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CONTAINER_NOT_OPEN);
    /* Reads still work; closing again is a no-op. */
    uint8_t back[500];
    assert_int_equal(read_range(f, 11, 1, 0, back, 500, &res), 0);
    assert_int_equal(dn_store_close_container(f->s, 11, &res), 0);

    /* CLOSED survives a reopen. */
    close_store(f);
    open_store(f);
    container_counts(f, 11, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED);
    assert_int_equal(write_chunk(f, 11, 3, 0, data, 10, &res), OZ_ESTATE);

    /* A container never written here is recorded empty and CLOSED. */
    assert_int_equal(dn_store_close_container(f->s, 12, &res), 0);
    container_counts(f, 12, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED);
    assert_int_equal(used, 0);
}

static void test_put_block_idempotent(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[3] = {100, 200, 300};
    uint8_t data[600];
    struct dn_result res;
    Ozone__Hdds__ContainerState st;
    uint64_t used, blocks, committed;

    fill(data, sizeof(data), 5);
    for (size_t i = 0; i < 3; i++) {
        size_t off = i == 0 ? 0 : i == 1 ? 100 : 300;
        assert_int_equal(write_chunk(f, 2, 5, off, data + off, sizes[i], &res),
                         0);
    }
    struct block one, two, three;
    make_block(&one, 2, 5, data, sizes, 1);
    make_block(&two, 2, 5, data, sizes, 2);
    make_block(&three, 2, 5, data, sizes, 3);
    assert_int_equal(dn_store_put_block(f->s, &two.bd, &committed, &res), 0);
    assert_int_equal(committed, 300);
    assert_int_equal(dn_store_put_block(f->s, &two.bd, &committed, &res), 0);
    assert_int_equal(committed, 300);
    /* A late shorter list does not shrink the block. */
    assert_int_equal(dn_store_put_block(f->s, &one.bd, &committed, &res), 0);
    assert_int_equal(committed, 300);
    container_counts(f, 2, &st, &used, &blocks);
    assert_int_equal(used, 300);
    assert_int_equal(blocks, 1);
    /* A longer one replaces it; counters follow. */
    assert_int_equal(dn_store_put_block(f->s, &three.bd, &committed, &res), 0);
    assert_int_equal(committed, 600);
    container_counts(f, 2, &st, &used, &blocks);
    assert_int_equal(used, 600);
    assert_int_equal(blocks, 1);
    /* A list that disagrees with the committed one is refused. */
    three.chunks[1].checksum ^= 1;
    assert_int_equal(dn_store_put_block(f->s, &three.bd, &committed, &res),
                     OZ_EINVAL);
    assert_int_equal(res.code, OZONE__RESULT_CODE__INVALID_ARGUMENT);
    /* Rewriting a committed chunk with other bytes is refused; repeating
     * it exactly (a retry) is accepted. */
    uint8_t other[100];
    fill(other, sizeof(other), 99);
    assert_int_equal(write_chunk(f, 2, 5, 0, other, 100, &res), OZ_EINVAL);
    assert_non_null(strstr(res.msg, "overwrites committed"));
    assert_int_equal(write_chunk(f, 2, 5, 0, data, 100, &res), 0);
    uint8_t back[100];
    assert_int_equal(read_range(f, 2, 5, 0, back, 100, &res), 0);
    assert_memory_equal(back, data, 100);
    /* Still one block after a reopen, with the longest list. */
    close_store(f);
    open_store(f);
    container_counts(f, 2, &st, &used, &blocks);
    assert_int_equal(used, 600);
    assert_int_equal(blocks, 1);
}

static void test_lengths_refused(void **state)
{
    struct fixture *f = *state;
    Ozone__Hdds__BlockID bid = OZONE__HDDS__BLOCK_ID__INIT;
    Ozone__Datanode__ChunkInfo ch;
    struct dn_result res;
    static uint8_t data[MAX_CHUNK + 1];
    uint64_t committed;

    fill(data, sizeof(data), 6);
    bid.container_id = 4;
    bid.local_id = 1;
    /* Declared length differs from the data carried. */
    chunk_info(&ch, 0, data, 100);
    assert_int_equal(dn_store_write_chunk(f->s, &bid, &ch, data, 99, "p", &res),
                     OZ_EINVAL);
    assert_non_null(strstr(res.msg, "declares 100 bytes but carries 99"));
    /* Larger than the message cap. */
    chunk_info(&ch, 0, data, MAX_CHUNK + 1);
    assert_int_equal(
        dn_store_write_chunk(f->s, &bid, &ch, data, MAX_CHUNK + 1, "p", &res),
        OZ_EINVAL);
    /* Empty. */
    chunk_info(&ch, 0, data, 0);
    assert_int_equal(dn_store_write_chunk(f->s, &bid, &ch, data, 0, "p", &res),
                     OZ_EINVAL);
    /* Offset that overflows. */
    chunk_info(&ch, UINT64_MAX - 10, data, 100);
    assert_int_equal(
        dn_store_write_chunk(f->s, &bid, &ch, data, 100, "p", &res), OZ_EINVAL);
    /* No checksum. */
    chunk_info(&ch, 0, data, 100);
    ch.checksum_type = OZONE__DATANODE__CHECKSUM_TYPE__CHECKSUM_NONE;
    assert_int_equal(
        dn_store_write_chunk(f->s, &bid, &ch, data, 100, "p", &res), OZ_EINVAL);
    /* Container id 0. */
    bid.container_id = 0;
    chunk_info(&ch, 0, data, 100);
    assert_int_equal(
        dn_store_write_chunk(f->s, &bid, &ch, data, 100, "p", &res), OZ_EINVAL);
    assert_null(dn_store_find(f->s, 4));

    /* PutBlock shapes. */
    assert_int_equal(write_chunk(f, 4, 1, 0, data, 200, &res), 0);
    struct block b;
    static const size_t sizes[2] = {100, 100};
    make_block(&b, 4, 1, data, sizes, 2);
    b.bd.size = 150; /* size differs from the sum */
    assert_int_equal(dn_store_put_block(f->s, &b.bd, &committed, &res),
                     OZ_EINVAL);
    make_block(&b, 4, 1, data, sizes, 2);
    b.chunks[1].offset = 120; /* a hole */
    assert_int_equal(dn_store_put_block(f->s, &b.bd, &committed, &res),
                     OZ_EINVAL);
    assert_non_null(strstr(res.msg, "contiguous"));
    make_block(&b, 4, 1, data, sizes, 2);
    b.bd.n_chunks = 0;
    b.bd.size = 0;
    assert_int_equal(dn_store_put_block(f->s, &b.bd, &committed, &res),
                     OZ_EINVAL);
    /* Listing bytes that were never written. */
    static const size_t big[2] = {100, 200};
    make_block(&b, 4, 1, data, big, 2);
    assert_int_equal(dn_store_put_block(f->s, &b.bd, &committed, &res),
                     OZ_ENOTFOUND);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CHUNK_NOT_FOUND);
    /* Block of a container that does not exist. */
    make_block(&b, 77, 1, data, sizes, 2);
    assert_int_equal(dn_store_put_block(f->s, &b.bd, &committed, &res),
                     OZ_ENOTFOUND);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CONTAINER_NOT_FOUND);
    /* Reads: zero and oversized lengths. */
    uint8_t back[8];
    assert_int_equal(read_range(f, 4, 1, 0, back, 0, &res), OZ_EINVAL);
    assert_int_not_equal(read_range(f, 4, 1, 0, data, MAX_CHUNK + 1, &res), 0);
}

static void test_start_up_consistency(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[1] = {64};
    uint8_t data[64];
    struct block a = {.bid = {.container_id = 20, .local_id = 1}};
    struct block b = {.bid = {.container_id = 21, .local_id = 1}};
    Ozone__Hdds__ContainerState st;
    uint64_t used, blocks;
    char path[512], cmd[600];

    fill(data, sizeof(data), 7);
    write_block(f, &a, data, sizes, 1);
    write_block(f, &b, data, sizes, 1);
    close_store(f);
    /* Container 20's directory disappears; 30 appears without a record;
     * junk in the containers directory is ignored. */
    snprintf(path, sizeof(path), "%s/hdds/CID-test/containers/20", f->vol[0]);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/hdds/CID-test/containers/30/chunks",
             f->vol[0]);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/hdds/CID-test/containers/junk", f->vol[0]);
    assert_int_equal(mkdir(path, 0755), 0);
    open_store(f);
    container_counts(f, 20, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY);
    container_counts(f, 21, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN);
    container_counts(f, 30, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY);
    /* UNHEALTHY is refused for writes and sticks across a reopen. */
    struct dn_result res;
    assert_int_equal(write_chunk(f, 30, 1, 0, data, 64, &res), OZ_ESTATE);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CONTAINER_NOT_OPEN);
    close_store(f);
    open_store(f);
    container_counts(f, 20, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY);
    container_counts(f, 30, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY);
    struct dn_reports r;
    assert_int_equal(dn_store_container_reports(f->s, &r), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.ptrs[0]->container_id, 20);
    assert_int_equal(r.ptrs[2]->container_id, 30);
    dn_reports_free(&r);
}

static void test_round_robin_volumes(void **state)
{
    struct fixture *f = *state;
    uint8_t data[32];
    struct dn_result res;
    char path[512];
    struct stat st;

    fill(data, sizeof(data), 8);
    for (uint64_t cid = 1; cid <= 4; cid++) {
        assert_int_equal(write_chunk(f, cid, 1, 0, data, 32, &res), 0);
    }
    int on0 = 0, on1 = 0;
    for (uint64_t cid = 1; cid <= 4; cid++) {
        snprintf(path, sizeof(path), "%s/hdds/CID-test/containers/%llu",
                 f->vol[0], (unsigned long long)cid);
        on0 += stat(path, &st) == 0;
        snprintf(path, sizeof(path), "%s/hdds/CID-test/containers/%llu",
                 f->vol[1], (unsigned long long)cid);
        on1 += stat(path, &st) == 0;
    }
    assert_int_equal(on0, 2);
    assert_int_equal(on1, 2);
    struct dn_storage sr;
    assert_int_equal(dn_store_storage_reports(f->s, &sr), 0);
    assert_int_equal(sr.n, 2);
    assert_false(sr.ptrs[0]->failed);
    assert_true(sr.ptrs[0]->capacity > 0);
    assert_string_equal(sr.ptrs[1]->storage_location, f->vol[1]);
    dn_storage_free(&sr);
    /* A container's volume is remembered across a reopen. */
    struct block b = {.bid = {.container_id = 2, .local_id = 1}};
    make_block(&b, 2, 1, data, (const size_t[]){32}, 1);
    uint64_t committed;
    assert_int_equal(dn_store_put_block(f->s, &b.bd, &committed, &res), 0);
    close_store(f);
    open_store(f);
    uint8_t back[32];
    assert_int_equal(read_range(f, 2, 1, 0, back, 32, &res), 0);
    assert_memory_equal(back, data, 32);
}

static void test_pipelines_and_list(void **state)
{
    struct fixture *f = *state;
    Ozone__Hdds__Pipeline p = OZONE__HDDS__PIPELINE__INIT;
    char errmsg[OZ_ERRMSG_SIZE];
    char **ids;
    size_t n;

    p.id = "pipe-a";
    assert_int_equal(dn_store_add_pipeline(f->s, &p, errmsg), 0);
    assert_int_equal(dn_store_add_pipeline(f->s, &p, errmsg), 0);
    p.id = "pipe-b";
    assert_int_equal(dn_store_add_pipeline(f->s, &p, errmsg), 0);
    assert_int_equal(dn_store_remove_pipeline(f->s, "pipe-a", errmsg), 0);
    assert_int_equal(dn_store_remove_pipeline(f->s, "nope", errmsg), 0);
    close_store(f);
    open_store(f);
    assert_int_equal(dn_store_pipeline_ids(f->s, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "pipe-b");
    dn_ids_free(ids, n);

    /* ListBlock pages a container's blocks in local id order. */
    uint8_t data[16];
    fill(data, sizeof(data), 9);
    for (uint64_t lid = 1; lid <= 5; lid++) {
        struct block b = {.bid = {.container_id = 8, .local_id = lid * 10}};
        write_block(f, &b, data, (const size_t[]){16}, 1);
    }
    struct block other = {.bid = {.container_id = 9, .local_id = 1}};
    write_block(f, &other, data, (const size_t[]){16}, 1);
    Ozone__Datanode__BlockData **list;
    struct dn_result res;
    assert_int_equal(
        dn_store_list_blocks(f->s, 8, 25, 2, NULL, &list, &n, &res), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0]->block_id->local_id, 30);
    assert_int_equal(list[1]->block_id->local_id, 40);
    for (size_t i = 0; i < n; i++) {
        ozone__datanode__block_data__free_unpacked(list[i], NULL);
    }
    free(list);
    assert_int_equal(
        dn_store_list_blocks(f->s, 8, 41, 0, NULL, &list, &n, &res), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->block_id->local_id, 50);
    ozone__datanode__block_data__free_unpacked(list[0], NULL);
    free(list);
    assert_int_equal(
        dn_store_list_blocks(f->s, 99, 0, 0, NULL, &list, &n, &res),
        OZ_ENOTFOUND);
    assert_int_equal(res.code, OZONE__RESULT_CODE__CONTAINER_NOT_FOUND);
}

static void test_failed_volume(void **state)
{
    struct fixture *f = *state;
    uint8_t data[32];
    struct dn_result res;
    Ozone__Hdds__ContainerState st;
    uint64_t used, blocks;
    char moved[160];

    fill(data, sizeof(data), 10);
    for (uint64_t cid = 1; cid <= 2; cid++) {
        struct block b = {.bid = {.container_id = cid, .local_id = 1}};
        write_block(f, &b, data, (const size_t[]){32}, 1);
    }
    close_store(f);
    /* vol1 (holding container 2) becomes unusable: a file in its place. */
    snprintf(moved, sizeof(moved), "%s.moved", f->vol[1]);
    assert_int_equal(rename(f->vol[1], moved), 0);
    FILE *fp = fopen(f->vol[1], "w");
    assert_non_null(fp);
    fclose(fp);
    open_store(f);
    container_counts(f, 1, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN);
    container_counts(f, 2, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY);
    /* New containers only go to the healthy directory. */
    for (uint64_t cid = 3; cid <= 4; cid++) {
        assert_int_equal(write_chunk(f, cid, 1, 0, data, 32, &res), 0);
        char path[512];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/hdds/CID-test/containers/%llu",
                 f->vol[0], (unsigned long long)cid);
        assert_int_equal(stat(path, &sb), 0);
    }
    struct dn_storage sr;
    assert_int_equal(dn_store_storage_reports(f->s, &sr), 0);
    assert_false(sr.ptrs[0]->failed);
    assert_true(sr.ptrs[1]->failed);
    dn_storage_free(&sr);
    close_store(f);
    /* Fixed: container 2 is back (UNHEALTHY was not persisted). */
    assert_int_equal(unlink(f->vol[1]), 0);
    assert_int_equal(rename(moved, f->vol[1]), 0);
    open_store(f);
    container_counts(f, 2, &st, &used, &blocks);
    assert_int_equal(st, OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN);
    uint8_t back[32];
    assert_int_equal(read_range(f, 2, 1, 0, back, 32, &res), 0);
    assert_memory_equal(back, data, 32);
    close_store(f);
    /* No usable directory at all: the store refuses to open. */
    char errmsg[OZ_ERRMSG_SIZE] = "";
    const char *bad[1] = {"/proc/ozone-no-such-dir"};
    struct dn_store_config cfg = {.data_dirs = bad,
                                  .n_data_dirs = 1,
                                  .cluster_id = "CID-test",
                                  .node_id = "dn-test",
                                  .max_chunk_bytes = MAX_CHUNK};
    assert_int_equal(
        kv_open(&f->kv, f->db, dn_kv_cfs, DN_N_KV_CFS, KV_CREATE, errmsg), 0);
    assert_int_equal(dn_store_open(&f->s, f->kv, &cfg, errmsg), OZ_EIO);
    assert_null(f->s);
    assert_non_null(strstr(errmsg, "no usable data directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_put_reopen_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_block_and_container, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_corruption_detected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checksum_refused_on_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_not_open_after_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_block_idempotent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lengths_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_up_consistency, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_volumes, setup_two,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipelines_and_list, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_volume, setup_two,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
