/* Unit tests for the version manager (DESIGN.md §6): catalogs, release
 * table, start-up rules (§6.4), upgrade actions (§6.3) and finalization
 * (§6.5), including an interrupted finalization resumed after a restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fault.h"
#include "log.h"
#include "props.h"
#include "version.h"
#include "test_tmpdir.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture ---- */

struct fixture
{
    char dir[64];
    char path[128]; /* dir/current/VERSION */
    struct version_manager *vm;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL) {
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/oz-version-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/current/VERSION", fx->dir);
    fx->vm = calloc(1, sizeof(*fx->vm));
    if (fx->vm == NULL) {
        free(fx);
        return -1;
    }
    fault_clear_all();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    test_tmpdir_remove(fx->dir);
    free(fx->vm);
    free(fx);
    fault_clear_all();
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    assert_non_null(f);
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
}

static void mkdir_current(const struct fixture *fx)
{
    char cur[128];
    char errmsg[OZ_ERRMSG_SIZE];
    snprintf(cur, sizeof(cur), "%s/current", fx->dir);
    assert_int_equal(oz_mkdirs(cur, errmsg), 0);
}

/* Replaces every "{dir}" in tmpl by dir. */
static void expand(const char *tmpl, const char *dir, char *out, size_t size)
{
    size_t o = 0;
    for (const char *s = tmpl; *s != '\0' && o + 1 < size;) {
        if (strncmp(s, "{dir}", 5) == 0) {
            o += (size_t)snprintf(out + o, size - o, "%s", dir);
            s += 5;
        } else {
            out[o++] = *s++;
        }
    }
    out[o < size ? o : size - 1] = '\0';
}

/* The OM catalog as release 1.0.0 shipped it, ending at ZDU_READY: the
 * manager tests below were written against it (the OM features above 100
 * are covered by the catalog tests and the upgrade integration tests). */
static const struct version_catalog *om_catalog_1_0(void)
{
    static struct version_catalog cat;

    cat = *version_builtin_catalog(VERSION_CATALOG_OM);
    while (cat.n_features > 0 &&
           cat.features[cat.n_features - 1].number > VERSION_ZDU_READY) {
        cat.n_features--;
    }
    return &cat;
}

static struct version_manager_config om_config(const struct fixture *fx)
{
    struct version_manager_config cfg = {
        .catalog = om_catalog_1_0(),
        .storage_dir = fx->dir,
        .node_type = "OM",
    };
    return cfg;
}

static long prop_long(struct version_manager *vm, const char *key)
{
    char buf[64];
    assert_int_equal(version_manager_prop(vm, key, buf, sizeof(buf)), 0);
    return strtol(buf, NULL, 10);
}

/* ---- test catalog with actions (features past 100) ---- */

struct recorder
{
    int finalized[16];
    size_t n_finalized;
    int validate_calls[256];
    int first_calls[256];
    int fail_validate; /* feature number whose VALIDATE fails, or -1 */
    int fail_first;    /* feature whose ON_FIRST_UPGRADE_START fails once */
    int fail_finalize; /* feature whose ON_FINALIZE fails, or -1 */
    int persisted[16];
    size_t n_persisted;
    int fail_persist; /* apparent whose on_persist fails, or -1 */
};

static int rec_validate(void *ctx,
                        const struct version_feature *f,
                        char *errmsg)
{
    struct recorder *r = ctx;
    r->validate_calls[f->number]++;
    if (f->number == r->fail_validate) {
        oz_errmsg_printf(errmsg,
                         "open containers of the old format exist; "
                         "close them first");
        return OZ_EREFUSED;
    }
    return 0;
}

static int rec_first(void *ctx, const struct version_feature *f, char *errmsg)
{
    struct recorder *r = ctx;
    r->first_calls[f->number]++;
    if (f->number == r->fail_first) {
        r->fail_first = -1; /* fails once */
        oz_errmsg_printf(errmsg, "disk full");
        return OZ_EIO;
    }
    return 0;
}

static int rec_finalize(void *ctx,
                        const struct version_feature *f,
                        char *errmsg)
{
    struct recorder *r = ctx;
    if (f->number == r->fail_finalize) {
        oz_errmsg_printf(errmsg, "rewrite of table 'keys' failed");
        return OZ_EIO;
    }
    assert_true(r->n_finalized < ARRAY_LEN(r->finalized));
    r->finalized[r->n_finalized++] = f->number;
    return 0;
}

static int rec_persist(void *ctx, int apparent, char *errmsg)
{
    struct recorder *r = ctx;
    if (apparent == r->fail_persist) {
        oz_errmsg_printf(errmsg, "cannot write #LAYOUTVERSION");
        return OZ_EIO;
    }
    r->persisted[r->n_persisted++] = apparent;
    return 0;
}

static void recorder_init(struct recorder *r)
{
    memset(r, 0, sizeof(*r));
    r->fail_validate = -1;
    r->fail_first = -1;
    r->fail_finalize = -1;
    r->fail_persist = -1;
}

static const struct version_feature test_features[] = {
    {0, "INITIAL_VERSION", "legacy", NULL, NULL, rec_finalize},
    {1, "LEGACY_ONE", "legacy", NULL, NULL, rec_finalize},
    {100, "ZDU_READY", "rolling upgrade", NULL, NULL, rec_finalize},
    {101, "FEATURE_A", "test feature A", rec_validate, rec_first, rec_finalize},
    {102, "FEATURE_B", "test feature B", rec_validate, rec_first, rec_finalize},
};

static const struct version_catalog test_catalog = {
    VERSION_CATALOG_OM, "TEST", test_features, ARRAY_LEN(test_features)};

static struct version_manager_config test_config(const struct fixture *fx,
                                                 struct recorder *r)
{
    struct version_manager_config cfg = {
        .catalog = &test_catalog,
        .storage_dir = fx->dir,
        .node_type = "OM",
        .action_ctx = r,
        .on_persist = rec_persist,
    };
    return cfg;
}

static void init_storage(const struct version_manager_config *cfg, int apparent)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int rc = version_storage_init(cfg, "CID-test", "omUuid", "om-1", apparent,
                                  errmsg);
    if (rc != 0) {
        fail_msg("init: %d %s", rc, errmsg);
    }
}

static void open_ok(struct version_manager *vm,
                    const struct version_manager_config *cfg)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int rc = version_manager_open(vm, cfg, errmsg);
    if (rc != 0) {
        fail_msg("open: %d %s", rc, errmsg);
    }
}

/* ---- catalogs and releases ---- */

static void test_builtin_catalogs(void **state)
{
    (void)state;
    static const struct
    {
        enum version_catalog_id id;
        const char *name;
        int numbers[8];
        size_t n;
    } want[] = {
        {VERSION_CATALOG_OM, "OM", {0, 1, 2, 100, 101, 102}, 6},
        {VERSION_CATALOG_HDDS, "HDDS", {0, 1, 2, 3, 4, 100, 101, 102}, 8},
        {VERSION_CATALOG_CLIENT, "CLIENT", {0, 100}, 2},
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        const struct version_catalog *cat = version_builtin_catalog(want[i].id);
        assert_non_null(cat);
        assert_int_equal(cat->id, want[i].id);
        assert_string_equal(cat->name, want[i].name);
        if (cat->n_features != want[i].n) {
            fail_msg("row %zu: %zu features, want %zu", i, cat->n_features,
                     want[i].n);
        }
        for (size_t j = 0; j < cat->n_features; j++) {
            const struct version_feature *f = &cat->features[j];
            if (f->number != want[i].numbers[j]) {
                fail_msg("row %zu: feature %zu is %d", i, j, f->number);
            }
            for (const char *c = f->name; *c != '\0'; c++) {
                assert_true(isupper((unsigned char)*c) || isdigit(*c) ||
                            *c == '_');
            }
            assert_true(strlen(f->description) > 0);
            assert_null(f->validate_in_prefinalize);
            assert_null(f->on_first_upgrade_start);
            assert_null(f->on_finalize);
        }
        /* The current release ships every catalog at its newest version. */
        assert_int_equal(version_catalog_max(cat),
                         version_release_current()->software[want[i].id]);
        assert_string_equal(version_catalog_find(cat, 100)->name, "ZDU_READY");
        assert_string_equal(version_catalog_find(cat, 0)->name,
                            "INITIAL_VERSION");
        assert_null(version_catalog_find(cat, 50));
        assert_int_equal(version_catalog_find_name(cat, "ZDU_READY")->number,
                         100);
        assert_null(version_catalog_find_name(cat, "NOPE"));
        assert_int_equal(version_catalog_next(cat, version_catalog_max(cat)),
                         -1);
        assert_int_equal(version_catalog_next(cat, -1), 0);
    }
    const struct version_catalog *om =
        version_builtin_catalog(VERSION_CATALOG_OM);
    assert_string_equal(version_catalog_find(om, 2)->name,
                        "FILESYSTEM_SNAPSHOT");
    assert_int_equal(version_catalog_next(om, 2), 100);
    assert_int_equal(version_catalog_next(om, 0), 1);
    const struct version_catalog *hdds =
        version_builtin_catalog(VERSION_CATALOG_HDDS);
    assert_string_equal(version_catalog_find(hdds, 4)->name,
                        "DATANODE_SCHEMA_V3");
    assert_int_equal(version_catalog_find_name(hdds, "SCM_HA")->number, 2);
    assert_string_equal(version_catalog_find(hdds, 101)->name,
                        "CHUNK_CHECKSUM_SHA256");
    assert_string_equal(version_catalog_find(hdds, 102)->name,
                        "CONTAINER_CHECKSUM");
    assert_int_equal(version_catalog_next(hdds, 100), 101);
    assert_null(version_builtin_catalog(VERSION_CATALOG_COUNT));
}

static int dummy_action(void *ctx, const struct version_feature *f, char *e)
{
    (void)ctx;
    (void)f;
    (void)e;
    return 0;
}

/* A daemon's catalog: the built-in numbers with its actions attached. */
static void test_catalog_build(void **state)
{
    const struct version_actions acts[] = {
        {VERSION_HDDS_CONTAINER_CHECKSUM, dummy_action, NULL, dummy_action},
    };
    const struct version_actions bad[] = {{50, dummy_action, NULL, NULL}};
    const struct version_catalog *b =
        version_builtin_catalog(VERSION_CATALOG_HDDS);
    struct version_feature buf[16];
    struct version_catalog cat;

    (void)state;
    assert_int_equal(
        version_catalog_build(VERSION_CATALOG_HDDS, acts, 1, buf, 16, &cat), 0);
    assert_int_equal(cat.n_features, b->n_features);
    assert_string_equal(cat.name, "HDDS");
    for (size_t i = 0; i < cat.n_features; i++) {
        assert_int_equal(cat.features[i].number, b->features[i].number);
        assert_string_equal(cat.features[i].name, b->features[i].name);
        bool has = cat.features[i].number == VERSION_HDDS_CONTAINER_CHECKSUM;
        assert_true((cat.features[i].validate_in_prefinalize != NULL) == has);
        assert_true((cat.features[i].on_finalize != NULL) == has);
        assert_null(cat.features[i].on_first_upgrade_start);
    }
    assert_int_equal(
        version_catalog_build(VERSION_CATALOG_HDDS, bad, 1, buf, 16, &cat),
        OZ_EINVAL);
    assert_int_equal(
        version_catalog_build(VERSION_CATALOG_HDDS, acts, 1, buf, 2, &cat),
        OZ_EINVAL);
}

static void test_release_table(void **state)
{
    (void)state;
    size_t n;
    const struct version_release *r = version_releases(&n);

    assert_int_equal(n, 3);
    assert_string_equal(r[0].release, "0.9.0");
    assert_int_equal(r[0].software[VERSION_CATALOG_OM], 2);
    assert_int_equal(r[0].software[VERSION_CATALOG_HDDS], 4);
    assert_int_equal(r[0].software[VERSION_CATALOG_CLIENT], 0);
    assert_ptr_equal(version_release_current(), &r[n - 1]);
    assert_string_equal(version_release_current()->release, "1.1.0");
    assert_string_equal(r[1].release, "1.0.0");
    for (int c = 0; c < VERSION_CATALOG_COUNT; c++) {
        assert_int_equal(r[1].software[c], VERSION_ZDU_READY);
    }
    assert_int_equal(version_release_current()->software[VERSION_CATALOG_HDDS],
                     102);
    for (int c = 0; c < VERSION_CATALOG_COUNT; c++) {
        const struct version_catalog *cat = version_builtin_catalog(c);
        assert_int_equal(version_release_current()->software[c],
                         version_catalog_max(cat));
    }
    assert_string_equal(version_release_for(VERSION_CATALOG_OM, 2)->release,
                        "0.9.0");
    assert_string_equal(version_release_for(VERSION_CATALOG_OM, 100)->release,
                        "1.0.0");
    assert_null(version_release_for(VERSION_CATALOG_OM, 1));
    assert_string_equal(version_release_for(VERSION_CATALOG_HDDS, 4)->release,
                        "0.9.0");
    /* --testing-software-version 100 on an HDDS daemon acts as 1.0.0. */
    assert_string_equal(version_release_for(VERSION_CATALOG_HDDS, 100)->release,
                        "1.0.0");
    assert_string_equal(version_release_for(VERSION_CATALOG_HDDS, 102)->release,
                        "1.1.0");
    assert_null(version_release_for(VERSION_CATALOG_HDDS, 101));
}

/* ---- §6.4 start-up rules, table-driven ---- */

struct start_case
{
    const char *what;
    enum version_catalog_id catalog;
    const char *version; /* VERSION content; NULL: no VERSION file */
    const char *extra;   /* a file to create, relative to the dir */
    int testing_sw;
    int rc;
    const char *msg; /* exact, "{dir}" expanded; NULL when rc == 0 */
    int apparent;    /* when rc == 0 */
    int software;    /* when rc == 0 */
};

#define V(lv) "nodeType=OM\nclusterID=CID-1\ncTime=1\nlayoutVersion=" lv "\n"

static const struct start_case start_cases[] = {
    {"finalized", VERSION_CATALOG_OM, V("100"), NULL, 0, 0, NULL, 100, 100},
    {"pre-finalized legacy", VERSION_CATALOG_OM, V("1"), NULL, 0, 0, NULL, 1,
     100},
    {"legacy initial", VERSION_CATALOG_OM, V("0"), NULL, 0, 0, NULL, 0, 100},
    {"truncated, finalized", VERSION_CATALOG_OM, V("2"), NULL, 2, 0, NULL, 2,
     2},
    {"truncated, pre-finalized", VERSION_CATALOG_OM, V("1"), NULL, 2, 0, NULL,
     1, 2},
    {"apparent > software", VERSION_CATALOG_OM, V("101"), NULL, 0, OZ_EVERSION,
     "cannot start: on-disk apparent version 101 is newer than this software "
     "(version 100); this component was finalized by a newer release and "
     "cannot be downgraded",
     0, 0},
    {"apparent > truncated software", VERSION_CATALOG_OM, V("100"), NULL, 2,
     OZ_EVERSION,
     "cannot start: on-disk apparent version 100 is newer than this software "
     "(version 2); this component was finalized by a newer release and "
     "cannot be downgraded",
     0, 0},
    {"no storage", VERSION_CATALOG_OM, NULL, NULL, 0, OZ_ENOTFOUND,
     "no storage in '{dir}': run with --init first", 0, 0},
    {"only an interrupted VERSION write", VERSION_CATALOG_OM, NULL,
     "current/.VERSION.tmpAbC123", 0, OZ_ENOTFOUND,
     "no storage in '{dir}': run with --init first", 0, 0},
    {"data without VERSION", VERSION_CATALOG_OM, NULL, "om.db", 0, OZ_ECORRUPT,
     "missing VERSION file in '{dir}/current' but '{dir}' holds data; "
     "restore VERSION from backup, never re-initialise a directory with data",
     0, 0},
    {"data in current without VERSION", VERSION_CATALOG_OM, NULL,
     "current/prepareMarker", 0, OZ_ECORRUPT,
     "missing VERSION file in '{dir}/current' but '{dir}' holds data; "
     "restore VERSION from backup, never re-initialise a directory with data",
     0, 0},
    {"unparsable VERSION", VERSION_CATALOG_OM, "this is not a VERSION file\n",
     NULL, 0, OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': line 1: expected "
     "key=value, found no '='; restore VERSION from backup",
     0, 0},
    {"binary VERSION", VERSION_CATALOG_OM, "\x01\x02=\\\x7f", NULL, 0,
     OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': line 1: unknown escape "
     "'\\\x7f' in value; restore VERSION from backup",
     0, 0},
    {"empty VERSION", VERSION_CATALOG_OM, "", NULL, 0, OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': missing key 'nodeType'; "
     "restore VERSION from backup",
     0, 0},
    {"missing layoutVersion", VERSION_CATALOG_OM,
     "nodeType=OM\nclusterID=CID-1\n", NULL, 0, OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': missing key "
     "'layoutVersion'; restore VERSION from backup",
     0, 0},
    {"non-numeric layoutVersion", VERSION_CATALOG_OM, V("abc"), NULL, 0,
     OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': key 'layoutVersion' is "
     "'abc', not a number; restore VERSION from backup",
     0, 0},
    {"trailing junk in layoutVersion", VERSION_CATALOG_OM, V("100x"), NULL, 0,
     OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': key 'layoutVersion' is "
     "'100x', not a number; restore VERSION from backup",
     0, 0},
    {"empty layoutVersion", VERSION_CATALOG_OM, V(""), NULL, 0, OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': key 'layoutVersion' is "
     "'', not a number; restore VERSION from backup",
     0, 0},
    {"unknown version inside the range", VERSION_CATALOG_OM, V("50"), NULL, 0,
     OZ_ECORRUPT,
     "cannot start: VERSION file '{dir}/current/VERSION' has layoutVersion "
     "50, which is not a version of the OM catalog (known: 0,1,2,100); "
     "restore VERSION from backup",
     0, 0},
    {"below the legacy range", VERSION_CATALOG_OM, V("-1"), NULL, 0,
     OZ_ECORRUPT,
     "cannot start: VERSION file '{dir}/current/VERSION' has layoutVersion "
     "-1, which is not a version of the OM catalog (known: 0,1,2,100); "
     "restore VERSION from backup",
     0, 0},
    {"newer than truncated legacy software", VERSION_CATALOG_OM, V("3"), NULL,
     2, OZ_EVERSION,
     "cannot start: on-disk apparent version 3 is newer than this software "
     "(version 2); this component was finalized by a newer release and "
     "cannot be downgraded",
     0, 0},
    {"bad firstUpgradeDone", VERSION_CATALOG_OM,
     V("100") "firstUpgradeDone=101,x\n", NULL, 0, OZ_ECORRUPT,
     "corrupt VERSION file '{dir}/current/VERSION': key 'firstUpgradeDone' "
     "is '101,x', not a comma-separated list of versions; restore VERSION "
     "from backup",
     0, 0},
    {"wrong node type", VERSION_CATALOG_OM,
     "nodeType=SCM\nclusterID=CID-1\nlayoutVersion=100\n", NULL, 0, OZ_ECORRUPT,
     "VERSION file '{dir}/current/VERSION' belongs to node type SCM, not "
     "OM; check the storage directory setting",
     0, 0},
    {"testing version not in catalog", VERSION_CATALOG_OM, V("100"), NULL, 7,
     OZ_EINVAL,
     "--testing-software-version 7 is not a version of the OM catalog "
     "(known: 0,1,2,100)",
     0, 0},
    {"HDDS legacy", VERSION_CATALOG_HDDS, V("3"), NULL, 0, 0, NULL, 3, 102},
    {"HDDS unknown", VERSION_CATALOG_HDDS, V("5"), NULL, 0, OZ_ECORRUPT,
     "cannot start: VERSION file '{dir}/current/VERSION' has layoutVersion "
     "5, which is not a version of the HDDS catalog (known: "
     "0,1,2,3,4,100,101,102); "
     "restore VERSION from backup",
     0, 0},
    {"HDDS truncated to legacy", VERSION_CATALOG_HDDS, V("4"), NULL, 4, 0, NULL,
     4, 4},
};

static void test_start_rules(void **state)
{
    struct fixture *fx = *state;

    for (size_t i = 0; i < ARRAY_LEN(start_cases); i++) {
        const struct start_case *c = &start_cases[i];
        struct version_manager_config cfg = om_config(fx);
        char errmsg[OZ_ERRMSG_SIZE] = "";
        char want[OZ_ERRMSG_SIZE * 2];
        char before[4096] = "";
        char after[4096] = "";
        int rc;

        test_tmpdir_remove(fx->dir);
        assert_int_equal(mkdir(fx->dir, 0700), 0);
        cfg.catalog = c->catalog == VERSION_CATALOG_OM
                          ? om_catalog_1_0()
                          : version_builtin_catalog(c->catalog);
        cfg.testing_software_version = c->testing_sw;
        if (c->version != NULL) {
            mkdir_current(fx);
            write_file(fx->path, c->version);
            read_file(fx->path, before, sizeof(before));
        }
        if (c->extra != NULL) {
            char p[256];
            mkdir_current(fx);
            snprintf(p, sizeof(p), "%s/%s", fx->dir, c->extra);
            write_file(p, "x");
        }
        rc = version_manager_open(fx->vm, &cfg, errmsg);
        if (rc != c->rc) {
            fail_msg("row %zu (%s): rc %d (%s), want %d", i, c->what, rc,
                     errmsg, c->rc);
        }
        if (rc == 0) {
            if (version_manager_apparent(fx->vm) != c->apparent ||
                version_manager_software(fx->vm) != c->software) {
                fail_msg("row %zu (%s): %d/%d, want %d/%d", i, c->what,
                         version_manager_apparent(fx->vm),
                         version_manager_software(fx->vm), c->apparent,
                         c->software);
            }
            if (version_manager_needs_finalization(fx->vm) !=
                (c->apparent < c->software)) {
                fail_msg("row %zu (%s): needs_finalization wrong", i, c->what);
            }
            version_manager_close(fx->vm);
            continue;
        }
        expand(c->msg, fx->dir, want, sizeof(want));
        if (strcmp(errmsg, want) != 0) {
            fail_msg("row %zu (%s): message\n  '%s'\nwant\n  '%s'", i, c->what,
                     errmsg, want);
        }
        /* A refused start never touches the VERSION file. */
        if (c->version != NULL) {
            read_file(fx->path, after, sizeof(after));
            if (strcmp(before, after) != 0) {
                fail_msg("row %zu (%s): VERSION modified", i, c->what);
            }
        }
    }
}

/* ---- init ---- */

static void test_init_and_reopen(void **state)
{
    struct fixture *fx = *state;
    struct version_manager_config cfg = om_config(fx);
    char errmsg[OZ_ERRMSG_SIZE];
    char buf[128];
    char text[1024];

    assert_false(version_storage_exists(fx->dir));
    init_storage(&cfg, -1);
    assert_true(version_storage_exists(fx->dir));
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    assert_int_equal(version_manager_software(fx->vm), 100);
    assert_false(version_manager_needs_finalization(fx->vm));
    assert_int_equal(version_manager_unfinalized(fx->vm, NULL, 0), 0);
    assert_int_equal(version_manager_prop(fx->vm, "nodeType", buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, "OM");
    assert_int_equal(
        version_manager_prop(fx->vm, "clusterID", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "CID-test");
    assert_int_equal(version_manager_prop(fx->vm, "omUuid", buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, "om-1");
    assert_true(prop_long(fx->vm, "cTime") > 1600000000000L);
    assert_int_equal(prop_long(fx->vm, "layoutVersion"), 100);
    assert_int_equal(prop_long(fx->vm, "softwareVersion"), 100);
    assert_int_equal(version_manager_prop(fx->vm, "nope", buf, sizeof(buf)),
                     OZ_ENOTFOUND);
    assert_int_equal(version_manager_prop(fx->vm, "clusterID", buf, 4),
                     OZ_ETOOBIG);
    version_manager_close(fx->vm);

    read_file(fx->path, text, sizeof(text));
    assert_non_null(strstr(text, "nodeType=OM\n"));
    assert_non_null(strstr(text, "layoutVersion=100\n"));

    /* Never re-initialise. */
    assert_int_equal(
        version_storage_init(&cfg, "CID-other", "omUuid", "om-2", -1, errmsg),
        OZ_EEXIST);
    assert_non_null(strstr(errmsg, "already initialised"));
    read_file(fx->path, text, sizeof(text));
    assert_non_null(strstr(text, "clusterID=CID-test\n"));
}

static void test_init_refusals(void **state)
{
    struct fixture *fx = *state;
    struct version_manager_config cfg = om_config(fx);
    char errmsg[OZ_ERRMSG_SIZE];
    char want[OZ_ERRMSG_SIZE];
    char p[256];

    assert_int_equal(
        version_storage_init(&cfg, "CID", "omUuid", "om-1", 50, errmsg),
        OZ_EINVAL);
    assert_string_equal(errmsg,
                        "initial apparent version 50 is not a version "
                        "of the OM catalog (known: 0,1,2,100)");
    cfg.testing_software_version = 2;
    assert_int_equal(
        version_storage_init(&cfg, "CID", "omUuid", "om-1", 100, errmsg),
        OZ_EINVAL);
    cfg.testing_software_version = 9;
    assert_int_equal(
        version_storage_init(&cfg, "CID", "omUuid", "om-1", -1, errmsg),
        OZ_EINVAL);
    assert_string_equal(errmsg,
                        "--testing-software-version 9 is not a "
                        "version of the OM catalog (known: "
                        "0,1,2,100)");
    cfg.testing_software_version = 0;
    assert_int_equal(
        version_storage_init(&cfg, "", "omUuid", "om-1", -1, errmsg),
        OZ_EINVAL);

    /* A directory with data but no VERSION is never initialised. */
    snprintf(p, sizeof(p), "%s/om.db", fx->dir);
    write_file(p, "data");
    assert_int_equal(
        version_storage_init(&cfg, "CID", "omUuid", "om-1", -1, errmsg),
        OZ_ECORRUPT);
    expand(
        "missing VERSION file in '{dir}/current' but '{dir}' holds data; "
        "restore VERSION from backup, never re-initialise a directory "
        "with data",
        fx->dir, want, sizeof(want));
    assert_string_equal(errmsg, want);
    assert_false(version_storage_exists(fx->dir));
}

static void test_testing_software_version(void **state)
{
    struct fixture *fx = *state;
    struct version_manager_config cfg = om_config(fx);
    const struct version_feature *uf[8];

    /* An "old release" binary (0.9.0, OM 2) initialises storage... */
    cfg.testing_software_version = 2;
    init_storage(&cfg, -1);
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_software(fx->vm), 2);
    assert_int_equal(version_manager_apparent(fx->vm), 2);
    assert_false(version_manager_needs_finalization(fx->vm));
    assert_false(version_manager_is_allowed(fx->vm, 100));
    version_manager_close(fx->vm);

    /* ...then the new binary starts on it pre-finalized. */
    cfg.testing_software_version = 0;
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_software(fx->vm), 100);
    assert_int_equal(version_manager_apparent(fx->vm), 2);
    assert_true(version_manager_needs_finalization(fx->vm));
    assert_int_equal(version_manager_unfinalized(fx->vm, uf, 8), 1);
    assert_int_equal(uf[0]->number, 100);
    /* softwareVersion records the newest binary that started. */
    assert_int_equal(prop_long(fx->vm, "softwareVersion"), 100);
    version_manager_close(fx->vm);

    /* Going back to the old binary is fine while not finalized. */
    cfg.testing_software_version = 2;
    open_ok(fx->vm, &cfg);
    assert_int_equal(prop_long(fx->vm, "softwareVersion"), 2);
    version_manager_close(fx->vm);
}

/* ---- finalization ---- */

static void test_legacy_finalize_builtin(void **state)
{
    struct fixture *fx = *state;
    struct version_manager_config cfg = om_config(fx);
    const struct version_feature *uf[8];
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char text[1024];

    init_storage(&cfg, 0);
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_apparent(fx->vm), 0);
    assert_int_equal(version_manager_unfinalized(fx->vm, uf, 2), 3);
    assert_int_equal(uf[0]->number, 1);
    assert_int_equal(uf[1]->number, 2);

    assert_int_equal(version_manager_finalize_one(fx->vm, 2, errmsg),
                     OZ_EINVAL);
    assert_string_equal(errmsg,
                        "cannot finalize version 2: version 1 must "
                        "be finalized first");
    assert_int_equal(version_manager_finalize_one(fx->vm, 1, errmsg), 0);
    assert_int_equal(version_manager_apparent(fx->vm), 1);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    assert_false(version_manager_needs_finalization(fx->vm));
    version_manager_close(fx->vm);
    read_file(fx->path, text, sizeof(text));
    assert_non_null(strstr(text, "layoutVersion=100\n"));
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    version_manager_close(fx->vm);
}

static void test_finalize_order_past_100(void **state)
{
    struct fixture *fx = *state;
    struct recorder r;
    struct version_manager_config cfg;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    static const int order[] = {1, 100, 101, 102};

    recorder_init(&r);
    cfg = test_config(fx, &r);
    init_storage(&cfg, 0);
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_software(fx->vm), 102);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    assert_int_equal(r.n_finalized, ARRAY_LEN(order));
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        if (r.finalized[i] != order[i] || r.persisted[i] != order[i]) {
            fail_msg("step %zu: finalized %d, persisted %d, want %d", i,
                     r.finalized[i], r.persisted[i], order[i]);
        }
    }
    assert_int_equal(version_manager_apparent(fx->vm), 102);

    /* Replay (Raft) of finalized versions: logged no-op. */
    assert_int_equal(version_manager_finalize_one(fx->vm, 101, errmsg), 0);
    assert_int_equal(version_manager_finalize_one(fx->vm, 102, errmsg), 0);
    assert_int_equal(version_manager_finalize_one(fx->vm, 0, errmsg), 0);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    assert_int_equal(r.n_finalized, ARRAY_LEN(order));

    /* Beyond the software. */
    assert_int_equal(version_manager_finalize_one(fx->vm, 103, errmsg),
                     OZ_EINVAL);
    version_manager_close(fx->vm);

    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_apparent(fx->vm), 102);
    assert_int_equal(prop_long(fx->vm, "layoutVersion"), 102);
    version_manager_close(fx->vm);
}

static void test_finalize_errors(void **state)
{
    struct fixture *fx = *state;
    struct recorder r;
    struct version_manager_config cfg;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    recorder_init(&r);
    cfg = test_config(fx, &r);
    cfg.testing_software_version = 101;
    init_storage(&cfg, 100);
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_software(fx->vm), 101);

    /* Skipping a version is refused. */
    assert_int_equal(version_manager_finalize_one(fx->vm, 102, errmsg),
                     OZ_EINVAL);
    assert_string_equal(errmsg,
                        "cannot finalize version 102: not a version "
                        "of this TEST software (software version "
                        "101)");
    /* Below apparent: a replay, even for an unknown number. */
    assert_int_equal(version_manager_finalize_one(fx->vm, 50, errmsg), 0);
    assert_int_equal(version_manager_finalize(fx->vm, 102, errmsg), OZ_EINVAL);
    assert_string_equal(errmsg,
                        "cannot finalize TEST to version 102: not a "
                        "version of this software (known: "
                        "0,1,100,101)");
    assert_int_equal(r.n_finalized, 0);

    /* ON_FINALIZE failure: apparent stays, the next call retries. */
    r.fail_finalize = 101;
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), OZ_EIO);
    assert_string_equal(errmsg,
                        "ON_FINALIZE of TEST FEATURE_A (101) failed: "
                        "rewrite of table 'keys' failed");
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    assert_int_equal(r.n_persisted, 0);

    /* on_persist failure: VERSION written, memory not bumped. */
    r.fail_finalize = -1;
    r.fail_persist = 101;
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), OZ_EIO);
    assert_string_equal(errmsg,
                        "cannot persist TEST apparent version 101: "
                        "cannot write #LAYOUTVERSION");
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    r.fail_persist = -1;
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    assert_int_equal(version_manager_apparent(fx->vm), 101);
    assert_int_equal(r.n_finalized, 2); /* ON_FINALIZE ran again */
    version_manager_close(fx->vm);
}

static void test_finalize_crash_and_resume(void **state)
{
    struct fixture *fx = *state;
    struct recorder r;
    struct version_manager_config cfg;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char text[1024];

    recorder_init(&r);
    cfg = test_config(fx, &r);
    init_storage(&cfg, 100);
    open_ok(fx->vm, &cfg);

    /* "Crash" between ON_FINALIZE of 101 and persisting it. */
    fault_set("version.finalize.after_action", FAULT_ERROR);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), OZ_EFAULT);
    assert_non_null(strstr(errmsg, "version.finalize.after_action"));
    assert_int_equal(r.n_finalized, 1);
    assert_int_equal(r.finalized[0], 101);
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    read_file(fx->path, text, sizeof(text));
    assert_non_null(strstr(text, "layoutVersion=100\n"));
    version_manager_close(fx->vm);
    fault_set("version.finalize.after_action", FAULT_OFF);

    /* Restart: resumes at 101, running its ON_FINALIZE again. */
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    assert_int_equal(r.n_finalized, 3);
    assert_int_equal(r.finalized[1], 101);
    assert_int_equal(r.finalized[2], 102);
    assert_int_equal(version_manager_apparent(fx->vm), 102);
    version_manager_close(fx->vm);
    read_file(fx->path, text, sizeof(text));
    assert_non_null(strstr(text, "layoutVersion=102\n"));
}

static void test_finalize_crash_after_persist(void **state)
{
    struct fixture *fx = *state;
    struct recorder r;
    struct version_manager_config cfg;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    recorder_init(&r);
    cfg = test_config(fx, &r);
    init_storage(&cfg, 100);
    open_ok(fx->vm, &cfg);
    fault_set("version.finalize.after_persist", FAULT_ERROR);
    assert_int_equal(version_manager_finalize_one(fx->vm, 101, errmsg),
                     OZ_EFAULT);
    assert_int_equal(version_manager_apparent(fx->vm), 100);
    version_manager_close(fx->vm);
    fault_clear_all();

    /* VERSION says 101: the restart finalizes only 102. */
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_apparent(fx->vm), 101);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    assert_int_equal(r.n_finalized, 2);
    assert_int_equal(r.finalized[1], 102);
    version_manager_close(fx->vm);
}

/* ---- start-up actions ---- */

static void test_validate_refuses_start(void **state)
{
    struct fixture *fx = *state;
    struct recorder r;
    struct version_manager_config cfg;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    recorder_init(&r);
    cfg = test_config(fx, &r);
    init_storage(&cfg, 100);
    r.fail_validate = 102;
    assert_int_equal(version_manager_open(fx->vm, &cfg, errmsg), OZ_EREFUSED);
    assert_string_equal(errmsg,
                        "cannot start: VALIDATE_IN_PREFINALIZE of TEST "
                        "FEATURE_B (102) failed: open containers of the old "
                        "format exist; close them first");
    assert_int_equal(r.first_calls[101], 0); /* validation comes first */

    /* Runs on every start while unfinalized. */
    r.fail_validate = -1;
    open_ok(fx->vm, &cfg);
    version_manager_close(fx->vm);
    open_ok(fx->vm, &cfg);
    assert_int_equal(r.validate_calls[101], 3);
    assert_int_equal(r.validate_calls[102], 3);
    {
        char errmsg2[OZ_ERRMSG_SIZE];
        assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg2), 0);
    }
    version_manager_close(fx->vm);
    /* Finalized: no longer run. */
    r.fail_validate = 101;
    open_ok(fx->vm, &cfg);
    assert_int_equal(r.validate_calls[101], 3);
    version_manager_close(fx->vm);
}

static void test_first_upgrade_start_once_and_retry(void **state)
{
    struct fixture *fx = *state;
    struct recorder r;
    struct version_manager_config cfg;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char buf[64];

    recorder_init(&r);
    cfg = test_config(fx, &r);
    init_storage(&cfg, 100);

    /* 101 succeeds and is recorded, 102 fails: start refused. */
    r.fail_first = 102;
    assert_int_equal(version_manager_open(fx->vm, &cfg, errmsg), OZ_EIO);
    assert_string_equal(errmsg,
                        "cannot start (retried on next start): "
                        "ON_FIRST_UPGRADE_START of TEST FEATURE_B "
                        "(102) failed: disk full");
    assert_int_equal(r.first_calls[101], 1);
    assert_int_equal(r.first_calls[102], 1);

    /* Next start: only 102 runs. */
    open_ok(fx->vm, &cfg);
    assert_int_equal(r.first_calls[101], 1);
    assert_int_equal(r.first_calls[102], 2);
    assert_int_equal(
        version_manager_prop(fx->vm, "firstUpgradeDone", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "101,102");
    version_manager_close(fx->vm);

    /* And never again. */
    open_ok(fx->vm, &cfg);
    assert_int_equal(r.first_calls[101], 1);
    assert_int_equal(r.first_calls[102], 2);
    assert_true(version_manager_needs_finalization(fx->vm));
    version_manager_close(fx->vm);
}

/* ---- gating, describe, logging ---- */

static void test_check_feature_and_describe(void **state)
{
    struct fixture *fx = *state;
    struct version_manager_config cfg = om_config(fx);
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char out[64];

    init_storage(&cfg, 1);
    open_ok(fx->vm, &cfg);
    assert_true(version_manager_is_allowed(fx->vm, 0));
    assert_true(version_manager_is_allowed(fx->vm, 1));
    assert_false(version_manager_is_allowed(fx->vm, 2));
    assert_int_equal(
        version_manager_check_feature(fx->vm, 1, "CreateBucket", errmsg), 0);
    assert_int_equal(
        version_manager_check_feature(fx->vm, 2, "CreateSnapshot", errmsg),
        OZ_ENOTSUPPORTED);
    assert_string_equal(errmsg,
                        "operation 'CreateSnapshot' belongs to "
                        "feature FILESYSTEM_SNAPSHOT (version 2); "
                        "cluster apparent version is 1; finalize the "
                        "upgrade first");
    version_manager_describe(fx->vm, 100, out, sizeof(out));
    assert_string_equal(out, "ZDU_READY (100)");
    version_manager_describe(fx->vm, 1, out, sizeof(out));
    assert_string_equal(out, "ERASURE_CODED_STORAGE_SUPPORT (1)");
    version_manager_describe(fx->vm, 77, out, sizeof(out));
    assert_string_equal(out, "UNKNOWN (77)");
    version_manager_close(fx->vm);
}

static void test_log_lines(void **state)
{
    struct fixture *fx = *state;
    struct version_manager_config cfg = om_config(fx);
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char logpath[128];
    char text[8192];

    snprintf(logpath, sizeof(logpath), "%s/test.log", fx->dir);
    init_storage(&cfg, 1);
    assert_int_equal(log_init("om", "om1", logpath, LOG_LEVEL_INFO), 0);
    open_ok(fx->vm, &cfg);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    assert_int_equal(version_manager_finalize_one(fx->vm, 2, errmsg), 0);
    version_manager_close(fx->vm);
    log_close();
    read_file(logpath, text, sizeof(text));
    assert_non_null(strstr(text,
                           "OM pre-finalized: apparent version 1 "
                           "(ERASURE_CODED_STORAGE_SUPPORT), software "
                           "version 100 (ZDU_READY); run finalize\n"));
    assert_non_null(strstr(text,
                           "OM finalized FILESYSTEM_SNAPSHOT (2): "
                           "apparent version "
                           "ERASURE_CODED_STORAGE_SUPPORT (1) -> "
                           "FILESYSTEM_SNAPSHOT (2)"));
    assert_non_null(strstr(text, "OM finalized ZDU_READY (100)"));
    assert_non_null(strstr(text,
                           "OM finalize of FILESYSTEM_SNAPSHOT (2) is "
                           "a no-op"));
}

struct reader_arg
{
    struct version_manager *vm;
    atomic_int stop;
    int bad;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    int last = -1;
    while (!a->stop) {
        int v = version_manager_apparent(a->vm);
        char buf[64];
        if (v < last ||
            version_manager_prop(a->vm, "nodeType", buf, sizeof(buf)) != 0) {
            a->bad = 1;
        }
        last = v;
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    struct fixture *fx = *state;
    struct recorder r;
    struct version_manager_config cfg;
    struct reader_arg a = {.vm = NULL};
    char errmsg[OZ_ERRMSG_SIZE] = "";
    pthread_t t;

    recorder_init(&r);
    cfg = test_config(fx, &r);
    init_storage(&cfg, 0);
    open_ok(fx->vm, &cfg);
    a.vm = fx->vm;
    assert_int_equal(pthread_create(&t, NULL, reader, &a), 0);
    assert_int_equal(version_manager_finalize(fx->vm, -1, errmsg), 0);
    a.stop = 1;
    pthread_join(t, NULL);
    assert_int_equal(a.bad, 0);
    assert_int_equal(version_manager_apparent(fx->vm), 102);
    version_manager_close(fx->vm);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_catalogs),
        cmocka_unit_test(test_release_table),
        cmocka_unit_test(test_catalog_build),
        T(test_start_rules),
        T(test_init_and_reopen),
        T(test_init_refusals),
        T(test_testing_software_version),
        T(test_legacy_finalize_builtin),
        T(test_finalize_order_past_100),
        T(test_finalize_errors),
        T(test_finalize_crash_and_resume),
        T(test_finalize_crash_after_persist),
        T(test_validate_refuses_start),
        T(test_first_upgrade_start_once_and_retry),
        T(test_check_feature_and_describe),
        T(test_log_lines),
        T(test_concurrent_readers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
