/* conf: ozone-site.xml, -D overrides and typed getters (DESIGN.md §11).
 *
 * Storage is an array of entries in insertion order (conf_key_at) plus an
 * open-addressing hash index over it, so that a 4096-property file loads in
 * linear time. An entry set by -D is marked, and a file loaded later does
 * not replace it: "defaults < file < -D" holds whatever order main() loads
 * things in. conf_set() is the programmatic setter and always wins.
 *
 * The XML is untrusted input (an operator's file, or a fuzzer): it is parsed
 * with libxml2 with network access, entity substitution, DTD loading and
 * XInclude all off, and a document that carries a DTD is refused outright so
 * that internal entities cannot be used to blow up memory when a node's text
 * is read. Input size and property count are capped before any work.
 */
#include "conf.h"

#include "conf_keys.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#define CONF_MAX_INPUT (4u * 1024 * 1024)
#define CONF_MAX_PROPERTIES 4096
/* How much of a bad value is quoted back, so the key always fits in the
 * OZ_ERRMSG_SIZE message. */
#define CONF_QUOTE_MAX 64

struct conf_entry
{
    char *key;
    char *value;
    bool overridden; /* set by -D; a file does not replace it */
};

struct conf
{
    struct conf_entry *entries;
    size_t n;
    size_t cap;
    uint32_t *slots; /* 0 = empty, else entry index + 1 */
    size_t n_slots;  /* power of two, at least 2 * n */
};

static void set_errmsg(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_errmsg(char *errmsg, const char *fmt, ...)
{
    va_list ap;

    if (errmsg == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, OZ_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

/* ---- storage ---------------------------------------------------------- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static size_t find_slot(const struct conf *c, const char *key)
{
    size_t mask = c->n_slots - 1;
    size_t i = hash_str(key) & mask;

    while (c->slots[i] != 0 &&
           strcmp(c->entries[c->slots[i] - 1].key, key) != 0) {
        i = (i + 1) & mask;
    }
    return i;
}

static struct conf_entry *find_entry(const struct conf *c, const char *key)
{
    size_t slot;

    if (c->n == 0) {
        return NULL;
    }
    slot = find_slot(c, key);
    return c->slots[slot] == 0 ? NULL : &c->entries[c->slots[slot] - 1];
}

static int grow_index(struct conf *c)
{
    size_t n_slots = c->n_slots == 0 ? 64 : c->n_slots * 2;
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    size_t i;

    if (slots == NULL) {
        return OZ_ENOMEM;
    }
    free(c->slots);
    c->slots = slots;
    c->n_slots = n_slots;
    for (i = 0; i < c->n; i++) {
        c->slots[find_slot(c, c->entries[i].key)] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Sets key to value (both copied). A file value does not replace a -D
 * value; see the top of the file. */
static int set_entry(struct conf *c,
                     const char *key,
                     const char *value,
                     bool from_override,
                     bool from_file)
{
    struct conf_entry *e = find_entry(c, key);
    char *v;

    if (e != NULL && from_file && e->overridden) {
        return 0;
    }
    v = strdup(value);
    if (v == NULL) {
        return OZ_ENOMEM;
    }
    if (e != NULL) {
        free(e->value);
        e->value = v;
        e->overridden = e->overridden || from_override;
        return 0;
    }
    if (c->n >= UINT32_MAX - 1) {
        free(v);
        return OZ_ETOOBIG;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap == 0 ? 32 : c->cap * 2;
        struct conf_entry *ents = realloc(c->entries, cap * sizeof(*ents));
        if (ents == NULL) {
            free(v);
            return OZ_ENOMEM;
        }
        c->entries = ents;
        c->cap = cap;
    }
    if ((c->n + 1) * 2 > c->n_slots && grow_index(c) != 0) {
        free(v);
        return OZ_ENOMEM;
    }
    e = &c->entries[c->n];
    e->key = strdup(key);
    if (e->key == NULL) {
        free(v);
        return OZ_ENOMEM;
    }
    e->value = v;
    e->overridden = from_override;
    c->slots[find_slot(c, key)] = (uint32_t)(c->n + 1);
    c->n++;
    return 0;
}

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    /* libxml2 wants its globals set up once before threads use it. */
    xmlInitParser();
}

struct conf *conf_new(void)
{
    pthread_once(&xml_once, xml_init);
    return calloc(1, sizeof(struct conf));
}

void conf_free(struct conf *c)
{
    size_t i;

    if (c == NULL) {
        return;
    }
    for (i = 0; i < c->n; i++) {
        free(c->entries[i].key);
        free(c->entries[i].value);
    }
    free(c->entries);
    free(c->slots);
    free(c);
}

int conf_set(struct conf *c, const char *key, const char *value)
{
    if (key == NULL || key[0] == '\0' || value == NULL) {
        return OZ_EINVAL;
    }
    return set_entry(c, key, value, false, false);
}

size_t conf_count(const struct conf *c)
{
    return c->n;
}

const char *conf_key_at(const struct conf *c, size_t i)
{
    return i < c->n ? c->entries[i].key : NULL;
}

const char *conf_get(const struct conf *c, const char *key)
{
    const struct conf_entry *e = find_entry(c, key);

    return e == NULL ? NULL : e->value;
}

const char *conf_get_str(const struct conf *c, const char *key, const char *def)
{
    const char *v = conf_get(c, key);

    return v == NULL ? def : v;
}

/* ---- XML ---------------------------------------------------------------- */

/* Trims ASCII whitespace in place; returns the start within s. */
static char *trim(char *s)
{
    char *end;

    while (*s != '\0' && isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        end--;
    }
    *end = '\0';
    return s;
}

static bool is_element(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE &&
           strcmp((const char *)n->name, name) == 0;
}

struct prop
{
    char *name; /* libxml2 allocations, freed with xmlFree */
    char *value;
};

/* Text of <name>/<value> children or of name=/value= attributes (Hadoop
 * accepts both). A later child wins, like Hadoop. */
static void read_property(xmlNode *p, struct prop *out)
{
    xmlNode *ch;

    out->name = (char *)xmlGetProp(p, (const xmlChar *)"name");
    out->value = (char *)xmlGetProp(p, (const xmlChar *)"value");
    for (ch = p->children; ch != NULL; ch = ch->next) {
        char **slot = NULL;
        if (is_element(ch, "name")) {
            slot = &out->name;
        } else if (is_element(ch, "value")) {
            slot = &out->value;
        }
        if (slot != NULL) {
            xmlFree(*slot);
            *slot = (char *)xmlNodeGetContent(ch);
            if (*slot == NULL) {
                /* An empty element has no content node. */
                *slot = (char *)xmlStrdup((const xmlChar *)"");
            }
        }
    }
}

static void free_props(struct prop *props, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        xmlFree(props[i].name);
        xmlFree(props[i].value);
    }
    free(props);
}

/* The first error of a parse: later ones are usually its consequences
 * ("premature end of data" after a tag mismatch). */
struct first_error
{
    bool set;
    int line;
    char text[160];
};

/* libxml2's structured error callback; data is the parser context, whose
 * _private points at the struct first_error. */
static void on_xml_error(void *data, xmlError *e)
{
    xmlParserCtxt *ctxt = data;
    struct first_error *fe = ctxt == NULL ? NULL : ctxt->_private;
    char *t;

    if (fe == NULL || fe->set || e == NULL || e->level < XML_ERR_ERROR) {
        return;
    }
    fe->set = true;
    fe->line = e->line;
    oz_strlcpy(fe->text, e->message == NULL ? "" : e->message,
               sizeof(fe->text));
    t = trim(fe->text);
    memmove(fe->text, t, strlen(t) + 1);
    if (fe->text[0] == '\0') {
        oz_strlcpy(fe->text, "not well-formed", sizeof(fe->text));
    }
    /* Our message grammar is lower case; keep acronyms ("PCDATA"). */
    if (!isupper((unsigned char)fe->text[1])) {
        fe->text[0] = (char)tolower((unsigned char)fe->text[0]);
    }
}

/* Collects every <property> of the document into *out; nothing is set in
 * c yet, so a bad file leaves the configuration untouched. */
static int collect_props(xmlDoc *doc,
                         const char *source,
                         struct prop **out,
                         size_t *n_out,
                         char *errmsg)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *p;
    struct prop *props = NULL;
    size_t n = 0;

    *out = NULL;
    *n_out = 0;
    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        set_errmsg(errmsg,
                   "refusing '%s': a DOCTYPE is not allowed in a "
                   "configuration file",
                   source);
        return OZ_ECORRUPT;
    }
    if (root == NULL || !is_element(root, "configuration")) {
        set_errmsg(errmsg,
                   "malformed configuration '%s': root element is '%.64s', "
                   "expected 'configuration'",
                   source, root == NULL ? "" : (const char *)root->name);
        return OZ_ECORRUPT;
    }
    for (p = root->children; p != NULL; p = p->next) {
        struct prop *pr;
        if (!is_element(p, "property")) {
            continue;
        }
        if (n == CONF_MAX_PROPERTIES) {
            set_errmsg(errmsg,
                       "configuration '%s' is too large: more than %d "
                       "properties",
                       source, CONF_MAX_PROPERTIES);
            free_props(props, n);
            return OZ_ETOOBIG;
        }
        if (n % 64 == 0) {
            struct prop *np = realloc(props, (n + 64) * sizeof(*np));
            if (np == NULL) {
                free_props(props, n);
                return OZ_ENOMEM;
            }
            props = np;
        }
        pr = &props[n++];
        read_property(p, pr);
        if (pr->name == NULL || trim(pr->name)[0] == '\0') {
            set_errmsg(errmsg,
                       "malformed configuration '%s': property %zu (line "
                       "%ld) has no name",
                       source, n, (long)xmlGetLineNo(p));
            free_props(props, n);
            return OZ_ECORRUPT;
        }
    }
    *out = props;
    *n_out = n;
    return 0;
}

int conf_load_buffer(struct conf *c,
                     const char *buf,
                     size_t len,
                     const char *source,
                     char *errmsg)
{
    xmlParserCtxt *ctxt;
    xmlDoc *doc;
    struct prop *props = NULL;
    struct first_error fe = {.set = false};
    size_t n = 0;
    size_t i;
    int rc;
    /* No NOENT (entities stay references), no DTD loading, no network. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
               XML_PARSE_NOCDATA;

    if (source == NULL) {
        source = "<buffer>";
    }
    if (len > CONF_MAX_INPUT) {
        set_errmsg(errmsg,
                   "configuration '%s' is too large: %zu bytes, the limit "
                   "is %u",
                   source, len, CONF_MAX_INPUT);
        return OZ_ETOOBIG;
    }
    pthread_once(&xml_once, xml_init);
    ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        return OZ_ENOMEM;
    }
    ctxt->_private = &fe;
    ctxt->sax->serror = on_xml_error;
    doc = xmlCtxtReadMemory(ctxt, buf, (int)len, source, NULL, opts);
    if (doc == NULL || !ctxt->wellFormed) {
        set_errmsg(errmsg, "malformed XML in '%s' at line %d: %s", source,
                   fe.set ? fe.line : 0, fe.set ? fe.text : "not well-formed");
        rc = OZ_ECORRUPT;
        goto out;
    }
    rc = collect_props(doc, source, &props, &n, errmsg);
    if (rc != 0) {
        goto out;
    }
    for (i = 0; i < n; i++) {
        const char *value = props[i].value;
        /* Hadoop skips a property that has a name but no value. */
        if (value == NULL) {
            continue;
        }
        rc = set_entry(c, trim(props[i].name), trim(props[i].value), false,
                       true);
        if (rc != 0) {
            set_errmsg(errmsg, "cannot load '%s': %s", source, oz_strerror(rc));
            break;
        }
    }
    free_props(props, n);
out:
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    return rc;
}

int conf_load_file(struct conf *c, const char *path, char *errmsg)
{
    FILE *f;
    char *buf;
    size_t n;
    int rc = 0;
    struct stat st;

    f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        set_errmsg(errmsg, "cannot open configuration '%s': %s", path,
                   strerror(e));
        return e == ENOENT ? OZ_ENOTFOUND : OZ_EIO;
    }
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
        set_errmsg(errmsg, "cannot read configuration '%s': not a file", path);
        fclose(f);
        return OZ_EIO;
    }
    /* One byte more than the cap tells a too-large file apart. */
    buf = malloc(CONF_MAX_INPUT + 1);
    if (buf == NULL) {
        fclose(f);
        return OZ_ENOMEM;
    }
    n = fread(buf, 1, CONF_MAX_INPUT + 1, f);
    if (ferror(f)) {
        set_errmsg(errmsg, "cannot read configuration '%s': %s", path,
                   strerror(errno));
        rc = OZ_EIO;
    } else if (n > CONF_MAX_INPUT) {
        set_errmsg(errmsg,
                   "configuration '%s' is too large: more than %u bytes", path,
                   CONF_MAX_INPUT);
        rc = OZ_ETOOBIG;
    } else {
        rc = conf_load_buffer(c, buf, n, path, errmsg);
    }
    free(buf);
    fclose(f);
    return rc;
}

int conf_load_dir(struct conf *c, const char *dir, char *errmsg)
{
    struct stat st;
    char path[4096];
    int rc;

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        set_errmsg(errmsg,
                   "configuration directory '%s' does not exist; check "
                   "--conf or OZONE_CONF_DIR",
                   dir);
        return OZ_ENOTFOUND;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/ozone-site.xml", dir) >=
        sizeof(path)) {
        set_errmsg(errmsg,
                   "configuration directory name '%.64s...' is too "
                   "long",
                   dir);
        return OZ_EINVAL;
    }
    rc = conf_load_file(c, path, errmsg);
    if (rc == OZ_ENOTFOUND) {
        /* DESIGN.md §11: a directory without ozone-site.xml means defaults. */
        if (errmsg != NULL) {
            errmsg[0] = '\0';
        }
        return 0;
    }
    return rc;
}

int conf_set_override(struct conf *c, const char *kv, char *errmsg)
{
    const char *eq = strchr(kv, '=');
    char *copy;
    char *key;
    int rc;

    if (eq == NULL) {
        set_errmsg(errmsg, "invalid override '%.64s': expected key=value", kv);
        return OZ_EINVAL;
    }
    copy = strdup(kv);
    if (copy == NULL) {
        return OZ_ENOMEM;
    }
    copy[eq - kv] = '\0';
    key = trim(copy);
    if (key[0] == '\0') {
        set_errmsg(errmsg, "invalid override '%.64s': the key is empty", kv);
        free(copy);
        return OZ_EINVAL;
    }
    rc = set_entry(c, key, trim(copy + (eq - kv) + 1), true, false);
    free(copy);
    return rc;
}

/* ---- unit parsers ------------------------------------------------------ */

/* Parses a non-negative decimal integer at the start of s (after trimmed
 * whitespace), stores the rest in *rest. OZ_EINVAL when there are no
 * digits, a sign, or overflow. */
static int parse_count(const char *s, long long *out, const char **rest)
{
    long long v = 0;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (!isdigit((unsigned char)*s)) {
        return OZ_EINVAL;
    }
    for (; isdigit((unsigned char)*s); s++) {
        int d = *s - '0';
        if (v > (LLONG_MAX - d) / 10) {
            return OZ_EINVAL;
        }
        v = v * 10 + d;
    }
    while (isspace((unsigned char)*s)) {
        s++;
    }
    *out = v;
    *rest = s;
    return 0;
}

/* True when s (a unit, possibly with trailing whitespace) equals u,
 * ignoring case. */
static bool unit_is(const char *s, const char *u)
{
    size_t n = strlen(u);

    if (strncasecmp(s, u, n) != 0) {
        return false;
    }
    for (s += n; *s != '\0'; s++) {
        if (!isspace((unsigned char)*s)) {
            return false;
        }
    }
    return true;
}

static int scale(long long v, long long mult, long long *out)
{
    if (v > LLONG_MAX / mult) {
        return OZ_EINVAL;
    }
    *out = v * mult;
    return 0;
}

int conf_parse_duration_ms(const char *s, long long *out_ms)
{
    static const struct
    {
        const char *unit;
        long long ms;
    } units[] = {
        {"", 1},          {"ms", 1},          {"s", 1000},
        {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24LL * 3600 * 1000},
    };
    long long v;
    const char *rest;
    size_t i;

    *out_ms = 0;
    if (s == NULL || parse_count(s, &v, &rest) != 0) {
        return OZ_EINVAL;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (unit_is(rest, units[i].unit)) {
            return scale(v, units[i].ms, out_ms);
        }
    }
    return OZ_EINVAL;
}

int conf_parse_size(const char *s, long long *out_bytes)
{
    static const char prefixes[] = "kmgtp";
    long long v;
    long long mult = 1;
    const char *rest;
    const char *p;
    size_t i;

    *out_bytes = 0;
    if (s == NULL || parse_count(s, &v, &rest) != 0) {
        return OZ_EINVAL;
    }
    if (unit_is(rest, "") || unit_is(rest, "b")) {
        *out_bytes = v;
        return 0;
    }
    p = rest[0] == '\0' ? NULL
                        : strchr(prefixes, tolower((unsigned char)rest[0]));
    if (p == NULL) {
        return OZ_EINVAL;
    }
    for (i = 0; i <= (size_t)(p - prefixes); i++) {
        mult *= 1024;
    }
    /* "64m", "64MB" and "64MiB" are all 64 * 2^20. */
    rest++;
    if (!unit_is(rest, "") && !unit_is(rest, "b") && !unit_is(rest, "ib")) {
        return OZ_EINVAL;
    }
    return scale(v, mult, out_bytes);
}

/* ---- typed getters ----------------------------------------------------- */

int conf_get_int(const struct conf *c,
                 const char *key,
                 long long def,
                 long long *out,
                 char *errmsg)
{
    const char *v = conf_get(c, key);
    char *end;
    long long n;

    *out = 0;
    if (v == NULL) {
        *out = def;
        return 0;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (end == v || *end != '\0') {
        set_errmsg(errmsg, "invalid value '%.*s' for '%s': expected an integer",
                   CONF_QUOTE_MAX, v, key);
        return OZ_EINVAL;
    }
    if (errno == ERANGE) {
        set_errmsg(errmsg,
                   "invalid value '%.*s' for '%s': integer out of range",
                   CONF_QUOTE_MAX, v, key);
        return OZ_EINVAL;
    }
    *out = n;
    return 0;
}

int conf_get_bool(const struct conf *c,
                  const char *key,
                  bool def,
                  bool *out,
                  char *errmsg)
{
    const char *v = conf_get(c, key);

    *out = false;
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (unit_is(v, "true")) {
        *out = true;
        return 0;
    }
    if (unit_is(v, "false")) {
        return 0;
    }
    set_errmsg(errmsg, "invalid value '%.*s' for '%s': expected true or false",
               CONF_QUOTE_MAX, v, key);
    return OZ_EINVAL;
}

int conf_get_duration_ms(const struct conf *c,
                         const char *key,
                         const char *def,
                         long long *out_ms,
                         char *errmsg)
{
    const char *v = conf_get_str(c, key, def);

    if (v == NULL) {
        *out_ms = 0;
        set_errmsg(errmsg, "'%s' is not set and has no default", key);
        return OZ_ENOTFOUND;
    }
    if (conf_parse_duration_ms(v, out_ms) != 0) {
        set_errmsg(errmsg,
                   "invalid value '%.*s' for '%s': expected a duration like "
                   "30s or 500ms",
                   CONF_QUOTE_MAX, v, key);
        return OZ_EINVAL;
    }
    return 0;
}

int conf_get_size(const struct conf *c,
                  const char *key,
                  const char *def,
                  long long *out_bytes,
                  char *errmsg)
{
    const char *v = conf_get_str(c, key, def);

    if (v == NULL) {
        *out_bytes = 0;
        set_errmsg(errmsg, "'%s' is not set and has no default", key);
        return OZ_ENOTFOUND;
    }
    if (conf_parse_size(v, out_bytes) != 0) {
        set_errmsg(errmsg,
                   "invalid value '%.*s' for '%s': expected a size like 64MB "
                   "or 1GB",
                   CONF_QUOTE_MAX, v, key);
        return OZ_EINVAL;
    }
    return 0;
}

/* ---- unknown keys ------------------------------------------------------ */

void conf_warn_unknown(const struct conf *c,
                       const char *const *known,
                       void (*warn)(const char *key))
{
    size_t n_table;
    const struct conf_key_info *table = conf_known_keys(&n_table);
    size_t i, j;

    for (i = 0; i < c->n; i++) {
        const char *key = c->entries[i].key;
        bool found = false;
        const char *const *k;

        /* Not conf_key_lookup(): a prefix entry's own name is no key. */
        for (j = 0; !found && j < n_table; j++) {
            found = conf_key_matches(table[j].name, key);
        }
        for (k = known; !found && k != NULL && *k != NULL; k++) {
            found = conf_key_matches(*k, key);
        }
        if (!found) {
            warn(key);
        }
    }
}

/* ---- start-up validation ----------------------------------------------- */

enum key_kind { KIND_TEXT, KIND_INT, KIND_BOOL, KIND_DURATION, KIND_SIZE };

/* A known key's type follows from its documented default: "8" is an
 * integer, "30s" a duration, "256MB" a size, "true" a boolean. */
static enum key_kind kind_of_default(const char *def)
{
    long long ignored;
    char *end;

    if (def == NULL || def[0] == '\0') {
        return KIND_TEXT;
    }
    errno = 0;
    (void)strtoll(def, &end, 10);
    if (*end == '\0' && errno == 0) {
        return KIND_INT;
    }
    if (unit_is(def, "true") || unit_is(def, "false")) {
        return KIND_BOOL;
    }
    if (conf_parse_duration_ms(def, &ignored) == 0) {
        return KIND_DURATION;
    }
    if (conf_parse_size(def, &ignored) == 0) {
        return KIND_SIZE;
    }
    return KIND_TEXT;
}

int conf_validate(const struct conf *c, char *errmsg)
{
    for (size_t i = 0; i < conf_count(c); i++) {
        const char *key = conf_key_at(c, i);
        const struct conf_key_info *info = conf_key_lookup(key);
        long long n;
        bool b;
        int rc = 0;

        if (info == NULL) {
            continue;
        }
        switch (kind_of_default(info->def)) {
            case KIND_INT:
                rc = conf_get_int(c, key, 0, &n, errmsg);
                break;
            case KIND_BOOL:
                rc = conf_get_bool(c, key, false, &b, errmsg);
                break;
            case KIND_DURATION:
                rc = conf_get_duration_ms(c, key, info->def, &n, errmsg);
                break;
            case KIND_SIZE:
                rc = conf_get_size(c, key, info->def, &n, errmsg);
                break;
            case KIND_TEXT:
                break;
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
