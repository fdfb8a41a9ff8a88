/* snapshot.c - warm restart (docs/reference.md §6): the cache and the
 * stream position written to snapshot.path, and read back at start. See
 * snapshot.h for the format and the rules; main.c loads the file before the
 * socket answers and runs the saver. */
#include "snapshot.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "names.h"
#include "stats.h"
#include "util.h"
#include "value.h"

#define SNAPSHOT_MAGIC "TCSNAP\r\n"
#define SNAPSHOT_MAGIC_LEN 8
#define SNAPSHOT_VERSION 2
#define SNAPSHOT_KINDS_MAX 64
#define SNAPSHOT_PUBLISHERS_MAX 65536
#define SNAPSHOT_SRC_MAX 1024

#define SNAPSHOT_CHECKSUM_SEED 0xcbf29ce484222325ULL
#define SNAPSHOT_CHECKSUM_PRIME 0x100000001b3ULL

/* The checksum is FNV-1a over 64-bit little-endian words instead of bytes:
 * eight times fewer dependent multiplications, which made the byte-wise
 * form a tenth of the load time. Each step is a bijection of the state, so
 * a change confined to one word always changes the sum. */
struct checksum {
    uint64_t hash;
    uint64_t length;
    unsigned char pending[8];
    size_t pending_len;
};

static uint64_t load_word(const unsigned char *bytes)
{
    uint64_t word;
    memcpy(&word, bytes, sizeof(word));
    return le64toh(word);
}

static void checksum_add(struct checksum *sum, const unsigned char *data, size_t len)
{
    sum->length += len;
    if (sum->pending_len > 0) {
        while (len > 0 && sum->pending_len < 8) {
            sum->pending[sum->pending_len++] = *data++;
            len--;
        }
        if (sum->pending_len < 8)
            return;
        sum->hash = (sum->hash ^ load_word(sum->pending)) * SNAPSHOT_CHECKSUM_PRIME;
        sum->pending_len = 0;
    }
    for (; len >= 8; data += 8, len -= 8)
        sum->hash = (sum->hash ^ load_word(data)) * SNAPSHOT_CHECKSUM_PRIME;
    memcpy(sum->pending, data, len);
    sum->pending_len = len;
}

static uint64_t checksum_end(struct checksum *sum)
{
    unsigned char last[8] = {0};
    memcpy(last, sum->pending, sum->pending_len);
    uint64_t hash = (sum->hash ^ load_word(last)) * SNAPSHOT_CHECKSUM_PRIME;
    return (hash ^ sum->length) * SNAPSHOT_CHECKSUM_PRIME;
}

uint64_t snapshot_checksum(const unsigned char *data, size_t len)
{
    struct checksum sum = {.hash = SNAPSHOT_CHECKSUM_SEED};
    checksum_add(&sum, data, len);
    return checksum_end(&sum);
}

/* ---- meta ---- */

void snapshot_meta_add_publisher(struct snapshot_meta *meta, const char *src, uint64_t seq)
{
    meta->publishers =
        xrealloc(meta->publishers, (meta->publisher_count + 1) * sizeof(*meta->publishers));
    meta->publishers[meta->publisher_count].src = xstrdup(src);
    meta->publishers[meta->publisher_count].seq = seq;
    meta->publisher_count++;
}

void snapshot_meta_clear(struct snapshot_meta *meta)
{
    for (size_t i = 0; i < meta->publisher_count; i++)
        free(meta->publishers[i].src);
    free(meta->publishers);
    memset(meta, 0, sizeof(*meta));
}

/* ---- encoding ---- */

struct snapshot_buffer {
    unsigned char *data;
    size_t len;
    size_t cap;
};

static void buffer_reserve(struct snapshot_buffer *buffer, size_t more)
{
    if (buffer->cap - buffer->len >= more)
        return;
    size_t cap = buffer->cap ? buffer->cap : 65536;
    while (cap - buffer->len < more)
        cap *= 2;
    buffer->data = xrealloc(buffer->data, cap);
    buffer->cap = cap;
}

static void put_bytes(struct snapshot_buffer *buffer, const void *data, size_t len)
{
    buffer_reserve(buffer, len);
    if (len > 0)
        memcpy(buffer->data + buffer->len, data, len);
    buffer->len += len;
}

static void put_uint(struct snapshot_buffer *buffer, uint64_t value, size_t width)
{
    unsigned char bytes[8];
    for (size_t i = 0; i < width; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    put_bytes(buffer, bytes, width);
}

/* The header, then one buffer per shard copied: a shard's copy never moves
 * what earlier shards produced (no large realloc while a lock is held). */
struct snapshot_writer {
    struct snapshot_buffer buffer;  /* the header, then the trailer at commit */
    struct snapshot_buffer *shards;
    size_t shard_count;
    struct snapshot_buffer *current;
    uint64_t entries;
    uint64_t now_ms;   /* of the shard being copied */
    uint64_t wall_ms;
};

struct snapshot_writer *snapshot_writer_begin(const struct config *config,
                                              const struct snapshot_meta *meta, uint64_t wall_ms)
{
    struct snapshot_writer *writer = xcalloc(1, sizeof(*writer));
    struct snapshot_buffer *b = &writer->buffer;
    put_bytes(b, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN);
    put_uint(b, SNAPSHOT_VERSION, 4);
    put_uint(b, wall_ms, 8);
    put_uint(b, config->kind_count, 4);
    for (unsigned i = 0; i < config->kind_count; i++) {
        size_t len = strlen(config->kinds[i].name);
        put_uint(b, len, 1);
        put_bytes(b, config->kinds[i].name, len);
        put_uint(b, config->kinds[i].tier == CONFIG_TIER_CRITICAL ? 1 : 0, 1);
        put_uint(b, (uint64_t)config->kinds[i].shape, 1);
    }
    put_uint(b, meta->has_stream_id ? 1 : 0, 1);
    put_uint(b, meta->has_stream_id ? meta->stream_id.ms : 0, 8);
    put_uint(b, meta->has_stream_id ? meta->stream_id.seq : 0, 8);
    size_t publishers = meta->publisher_count;
    if (publishers > SNAPSHOT_PUBLISHERS_MAX)
        publishers = SNAPSHOT_PUBLISHERS_MAX;
    size_t counted = 0;
    for (size_t i = 0; i < publishers; i++)
        counted += strlen(meta->publishers[i].src) <= SNAPSHOT_SRC_MAX;
    put_uint(b, counted, 4);
    for (size_t i = 0; i < publishers; i++) {
        size_t len = strlen(meta->publishers[i].src);
        if (len > SNAPSHOT_SRC_MAX)
            continue;
        put_uint(b, len, 2);
        put_bytes(b, meta->publishers[i].src, len);
        put_uint(b, meta->publishers[i].seq, 8);
    }
    return writer;
}

static void writer_entry(void *arg, const struct cache_entry_view *entry)
{
    struct snapshot_writer *writer = arg;
    uint64_t expires = 0;
    if (entry->expires_ms != 0) {
        if (entry->expires_ms <= writer->now_ms)
            return; /* expired: the sweep has not reached it yet */
        expires = writer->wall_ms + (entry->expires_ms - writer->now_ms);
    }
    if (entry->tenant_len > 255 || entry->key_len > UINT16_MAX || entry->json_len > UINT32_MAX ||
        entry->kind >= SNAPSHOT_KINDS_MAX)
        return; /* cannot happen: the cache's own limits are smaller */
    struct snapshot_buffer *b = writer->current;
    buffer_reserve(b, 3 + 1 + entry->tenant_len + 2 + entry->key_len + 4 + entry->json_len + 24);
    put_uint(b, 1, 1);
    put_uint(b, entry->tombstone ? 1 : 0, 1);
    put_uint(b, entry->kind, 1);
    put_uint(b, entry->tenant_len, 1);
    put_bytes(b, entry->tenant, entry->tenant_len);
    put_uint(b, entry->key_len, 2);
    put_bytes(b, entry->key, entry->key_len);
    put_uint(b, entry->json_len, 4);
    put_bytes(b, entry->json, entry->json_len);
    put_uint(b, entry->version, 8);
    put_uint(b, expires, 8);
    put_uint(b, entry->updated_ms, 8);
    writer->entries++;
}

uint64_t snapshot_writer_add_shard(struct snapshot_writer *writer, struct cache *cache,
                                   unsigned shard, uint64_t now_ms, uint64_t wall_ms)
{
    writer->now_ms = now_ms;
    writer->wall_ms = wall_ms;
    writer->shards = xrealloc(writer->shards, (writer->shard_count + 1) * sizeof(*writer->shards));
    writer->current = &writer->shards[writer->shard_count++];
    memset(writer->current, 0, sizeof(*writer->current));
    /* Room for about as much as the previous shard held, reserved before
     * the lock is taken. */
    size_t guess = writer->shard_count > 1 ? writer->shards[writer->shard_count - 2].len : 0;
    buffer_reserve(writer->current, guess + guess / 2 + 4096);
    /* Touch the fresh pages now: a page fault per 4 KB taken inside the
     * lock costs more than the copy itself. */
    memset(writer->current->data, 0, writer->current->cap);
    uint64_t start = util_monotonic_us();
    cache_foreach_entry(cache, shard, writer_entry, writer);
    return util_monotonic_us() - start;
}

uint64_t snapshot_writer_entries(const struct snapshot_writer *writer)
{
    return writer->entries;
}

/* fsync of the directory holding path, so that the rename is durable. */
static void sync_directory(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

/* Writes all of data to fd. Returns 0 or -1 (errno set: EIO when a write wrote nothing). */
static int write_all(int fd, const unsigned char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int snapshot_writer_commit(struct snapshot_writer *writer, const char *path, char *error)
{
    struct snapshot_buffer *b = &writer->buffer;
    size_t header_len = b->len;
    put_uint(b, 0, 1);
    put_uint(b, writer->entries, 8);
    struct checksum sum = {.hash = SNAPSHOT_CHECKSUM_SEED};
    checksum_add(&sum, b->data, header_len);
    for (size_t i = 0; i < writer->shard_count; i++)
        checksum_add(&sum, writer->shards[i].data, writer->shards[i].len);
    checksum_add(&sum, b->data + header_len, b->len - header_len);
    put_uint(b, checksum_end(&sum), 8);

    char temp[4096];
    if ((size_t)snprintf(temp, sizeof(temp), "%s.tmp", path) >= sizeof(temp)) {
        snprintf(error, ERROR_MAX, "path too long");
        return -1;
    }
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(error, ERROR_MAX, "cannot create %.100s: %.100s", temp, strerror(errno));
        return -1;
    }
    int status = write_all(fd, b->data, header_len);
    for (size_t i = 0; status == 0 && i < writer->shard_count; i++)
        status = write_all(fd, writer->shards[i].data, writer->shards[i].len);
    if (status == 0)
        status = write_all(fd, b->data + header_len, b->len - header_len);
    if (status != 0) {
        snprintf(error, ERROR_MAX, "cannot write %.100s: %.100s", temp, strerror(errno));
        goto fail;
    }
    if (fsync(fd) != 0) {
        snprintf(error, ERROR_MAX, "cannot fsync %.100s: %.100s", temp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(error, ERROR_MAX, "cannot close %.100s: %.100s", temp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(temp, path) != 0) {
        snprintf(error, ERROR_MAX, "cannot rename %.80s to %.80s: %.60s", temp, path,
                 strerror(errno));
        goto fail;
    }
    sync_directory(path);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    unlink(temp);
    return -1;
}

void snapshot_writer_free(struct snapshot_writer *writer)
{
    if (writer == NULL)
        return;
    free(writer->buffer.data);
    for (size_t i = 0; i < writer->shard_count; i++)
        free(writer->shards[i].data);
    free(writer->shards);
    free(writer);
}

/* ---- decoding ---- */

struct snapshot_cursor {
    const unsigned char *at;
    const unsigned char *end;
    bool failed;
};

static uint64_t get_uint(struct snapshot_cursor *c, size_t width)
{
    if (c->failed || (size_t)(c->end - c->at) < width) {
        c->failed = true;
        return 0;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < width; i++)
        value |= (uint64_t)c->at[i] << (8 * i);
    c->at += width;
    return value;
}

static const char *get_bytes(struct snapshot_cursor *c, size_t len)
{
    if (c->failed || (size_t)(c->end - c->at) < len) {
        c->failed = true;
        return NULL;
    }
    const char *bytes = (const char *)c->at;
    c->at += len;
    return bytes;
}

struct snapshot_kind_map {
    int config_kind[SNAPSHOT_KINDS_MAX]; /* -1: not cached by this config, or
                                          * cached with another shape */
    unsigned count;
};

/* One record as read from the file; the pointers are into the file. */
struct snapshot_record {
    unsigned state;          /* 0 value, 1 tombstone */
    unsigned file_kind;
    const char *tenant;
    size_t tenant_len;
    const char *key;
    size_t key_len;
    const char *json;
    size_t json_len;
    uint64_t version;
    uint64_t expires;        /* wall ms; 0: never */
    uint64_t updated;
};

/* Reads the record at c. Returns 1, 0 at the end marker, or -1 with error
 * set (number: the record's index, for the message). */
static int read_record(struct snapshot_cursor *c, const struct snapshot_kind_map *kinds,
                       uint64_t number, struct snapshot_record *r, char *error)
{
    uint64_t tag = get_uint(c, 1);
    if (c->failed)
        goto truncated;
    if (tag == 0)
        return 0;
    if (tag != 1) {
        snprintf(error, ERROR_MAX, "record %llu: unknown tag %llu",
                 (unsigned long long)number, (unsigned long long)tag);
        return -1;
    }
    r->state = (unsigned)get_uint(c, 1);
    r->file_kind = (unsigned)get_uint(c, 1);
    r->tenant_len = (size_t)get_uint(c, 1);
    r->tenant = get_bytes(c, r->tenant_len);
    r->key_len = (size_t)get_uint(c, 2);
    r->key = get_bytes(c, r->key_len);
    r->json_len = (size_t)get_uint(c, 4);
    r->json = get_bytes(c, r->json_len);
    r->version = get_uint(c, 8);
    r->expires = get_uint(c, 8);
    r->updated = get_uint(c, 8);
    if (c->failed)
        goto truncated;
    if (r->state > 1 || r->file_kind >= kinds->count ||
        !names_valid_tenant(r->tenant, r->tenant_len) || !names_valid_key(r->key, r->key_len) ||
        (r->state == 1 && r->json_len != 0)) {
        snprintf(error, ERROR_MAX, "record %llu is malformed", (unsigned long long)number);
        return -1;
    }
    return 1;
truncated:
    snprintf(error, ERROR_MAX, "truncated after %llu records", (unsigned long long)number);
    return -1;
}

/* Loading runs on up to this many threads, each over its own run of
 * records: parsing the values is most of a load, and nothing else runs yet. */
#define SNAPSHOT_LOADERS_MAX 4

/* One run of records to load, and what came of it. */
struct load_part {
    const struct config *config;
    const struct snapshot_kind_map *kinds;
    struct cache *cache;
    struct snapshot_cursor cursor; /* at the run's first record */
    uint64_t first;                /* its index in the file */
    uint64_t count;
    uint64_t now_ms;
    uint64_t wall_ms;
    int64_t loaded;                /* -1: failed, error says why */
    char error[ERROR_MAX];
};

/* Checks the framing of every record (not the values: see load_run) and the
 * trailer, and cuts the records into at most `wanted` runs of about equal
 * bytes. Returns the number of runs, or -1 with error set. */
static int frame_records(struct snapshot_cursor *c, const struct snapshot_kind_map *kinds,
                         struct load_part *parts, int wanted, char *error)
{
    const unsigned char *start = c->at;
    size_t span = (size_t)(c->end - c->at);
    uint64_t records = 0;
    int runs = 0;
    for (;;) {
        struct snapshot_cursor at = *c;
        struct snapshot_record record;
        int status = read_record(c, kinds, records, &record, error);
        if (status < 0)
            return -1;
        if (status == 0)
            break;
        /* a new run starts at the first record past its share of the bytes */
        if (runs == 0 || (runs < wanted && (size_t)(at.at - start) >= span / (size_t)wanted *
                                                                          (size_t)runs)) {
            parts[runs].cursor = at;
            parts[runs].first = records;
            runs++;
        }
        parts[runs - 1].count++;
        records++;
    }
    uint64_t count = get_uint(c, 8);
    if (c->failed || count != records) {
        snprintf(error, ERROR_MAX, "record count %llu, the file holds %llu",
                 (unsigned long long)count, (unsigned long long)records);
        return -1;
    }
    if (c->at != c->end) {
        snprintf(error, ERROR_MAX, "trailing bytes after the records");
        return -1;
    }
    return runs;
}

/* Loads one run of framed records into the cache. Values are checked
 * against their kind's shape only here, not while framing: the file was
 * written from values that passed that check under the same shape (the
 * kinds table says which) and its checksum holds, so a value failing it now
 * means a file crafted to look valid, and the caller empties the cache
 * again. Parsing every value once instead of twice halves the load. */
static void *load_run(void *arg)
{
    struct load_part *part = arg;
    const struct config *config = part->config;
    part->loaded = 0;
    for (uint64_t i = 0; i < part->count; i++) {
        struct snapshot_record r;
        if (read_record(&part->cursor, part->kinds, part->first + i, &r, part->error) != 1) {
            part->loaded = -1;
            break;
        }
        int kind = part->kinds->config_kind[r.file_kind];
        if (kind < 0 || (r.expires != 0 && r.expires <= part->wall_ms))
            continue;
        struct cache_key key = {
            .tenant = r.tenant,
            .tenant_len = r.tenant_len,
            .kind = (unsigned)kind,
            .key = r.key,
            .key_len = r.key_len,
        };
        struct cache_write write = {
            .critical = config->kinds[kind].tier == CONFIG_TIER_CRITICAL,
            .has_version = r.version != 0,
            .version = r.version,
            .expires_ms = r.expires != 0 ? part->now_ms + (r.expires - part->wall_ms) : 0,
            .updated_ms = r.updated,
        };
        if (r.state == 1) {
            part->loaded += cache_delete(part->cache, &key, &write, part->now_ms) == CACHE_OK;
            continue;
        }
        struct value_prepared value;
        char value_error[ERROR_MAX];
        if (value_prepare_text(config->kinds[kind].shape, r.json, r.json_len, &value,
                               value_error) != 0) {
            snprintf(part->error, ERROR_MAX, "record %llu (kind %.100s): %.100s",
                     (unsigned long long)(part->first + i), config->kinds[kind].name,
                     value_error);
            part->loaded = -1;
            break;
        }
        struct cache_value cache_value = {
            .json = value.json,
            .json_len = value.json_len,
            .derived = value.derived,
            .derived_len = value.derived_len,
            .index_key = value.index_key,
            .index_key_len = value.index_key_len,
        };
        part->loaded += cache_set(part->cache, &key, &cache_value, &write, part->now_ms) == CACHE_OK;
        value_clear(&value);
    }
    return NULL;
}

/* Loads the runs, parts[1..] on threads of their own (inline if a thread
 * cannot start). Returns the entries loaded, or -1 with error set. */
static int64_t load_runs(struct load_part *parts, int runs, char *error)
{
    pthread_t threads[SNAPSHOT_LOADERS_MAX];
    bool started[SNAPSHOT_LOADERS_MAX] = {false};
    for (int i = 1; i < runs; i++)
        started[i] = pthread_create(&threads[i], NULL, load_run, &parts[i]) == 0;
    load_run(&parts[0]);
    int64_t loaded = 0;
    int failed = -1;
    for (int i = 0; i < runs; i++) {
        if (i > 0) {
            if (started[i])
                pthread_join(threads[i], NULL);
            else
                load_run(&parts[i]);
        }
        if (parts[i].loaded < 0 && failed < 0)
            failed = i;
        loaded += parts[i].loaded;
    }
    if (failed >= 0) {
        snprintf(error, ERROR_MAX, "%s", parts[failed].error);
        return -1;
    }
    return loaded;
}

int64_t snapshot_decode(const struct config *config, const unsigned char *data, size_t len,
                        struct cache *cache, uint64_t now_ms, uint64_t wall_ms,
                        struct snapshot_meta *meta, char *error)
{
    memset(meta, 0, sizeof(*meta));
    if (len < SNAPSHOT_MAGIC_LEN + 4 + 8 || memcmp(data, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN) != 0) {
        snprintf(error, ERROR_MAX, "not a tenantcached snapshot");
        return -1;
    }
    struct snapshot_cursor c = {data + SNAPSHOT_MAGIC_LEN, data + len - 8, false};
    uint64_t version = get_uint(&c, 4);
    if (version != SNAPSHOT_VERSION) {
        snprintf(error, ERROR_MAX, "format version %llu, this daemon reads %d",
                 (unsigned long long)version, SNAPSHOT_VERSION);
        return -1;
    }
    struct snapshot_cursor sum = {data + len - 8, data + len, false};
    if (get_uint(&sum, 8) != snapshot_checksum(data, len - 8)) {
        snprintf(error, ERROR_MAX, "checksum mismatch (truncated or corrupt)");
        return -1;
    }
    uint64_t saved_at = get_uint(&c, 8);
    struct snapshot_kind_map kinds;
    uint64_t kind_count = get_uint(&c, 4);
    if (kind_count > SNAPSHOT_KINDS_MAX) {
        snprintf(error, ERROR_MAX, "%llu kinds", (unsigned long long)kind_count);
        return -1;
    }
    kinds.count = (unsigned)kind_count;
    for (unsigned i = 0; i < kinds.count && !c.failed; i++) {
        size_t name_len = (size_t)get_uint(&c, 1);
        const char *name = get_bytes(&c, name_len);
        (void)get_uint(&c, 1); /* the tier then; the config's applies now */
        uint64_t shape = get_uint(&c, 1);
        kinds.config_kind[i] = -1;
        for (unsigned k = 0; name != NULL && k < config->kind_count; k++) {
            if (strlen(config->kinds[k].name) == name_len &&
                memcmp(config->kinds[k].name, name, name_len) == 0 && config->kinds[k].cached &&
                (uint64_t)config->kinds[k].shape == shape)
                kinds.config_kind[i] = (int)k;
        }
    }
    struct snapshot_meta read = {0};
    read.saved_at_ms = saved_at;
    read.has_stream_id = get_uint(&c, 1) != 0;
    read.stream_id.ms = get_uint(&c, 8);
    read.stream_id.seq = get_uint(&c, 8);
    uint64_t publishers = get_uint(&c, 4);
    if (publishers > SNAPSHOT_PUBLISHERS_MAX) {
        snprintf(error, ERROR_MAX, "%llu publishers", (unsigned long long)publishers);
        return -1;
    }
    for (uint64_t i = 0; i < publishers && !c.failed; i++) {
        size_t src_len = (size_t)get_uint(&c, 2);
        const char *src = get_bytes(&c, src_len);
        uint64_t seq = get_uint(&c, 8);
        if (src == NULL || src_len == 0 || src_len > SNAPSHOT_SRC_MAX ||
            memchr(src, '\0', src_len) != NULL) {
            c.failed = true;
            break;
        }
        char *copy = xstrndup(src, src_len);
        snapshot_meta_add_publisher(&read, copy, seq);
        free(copy);
    }
    if (c.failed) {
        snapshot_meta_clear(&read);
        snprintf(error, ERROR_MAX, "truncated or malformed header");
        return -1;
    }
    /* Framing checked whole first; then loaded. */
    struct load_part parts[SNAPSHOT_LOADERS_MAX];
    memset(parts, 0, sizeof(parts));
    int wanted = config->threads < 1 ? 1 : (int)config->threads;
    if (wanted > SNAPSHOT_LOADERS_MAX)
        wanted = SNAPSHOT_LOADERS_MAX;
    int runs = frame_records(&c, &kinds, parts, wanted, error);
    if (runs < 0) {
        snapshot_meta_clear(&read);
        return -1;
    }
    int64_t loaded = 0;
    if (cache != NULL && runs > 0) {
        for (int i = 0; i < runs; i++) {
            parts[i].config = config;
            parts[i].kinds = &kinds;
            parts[i].cache = cache;
            parts[i].now_ms = now_ms;
            parts[i].wall_ms = wall_ms;
        }
        loaded = load_runs(parts, runs, error);
        if (loaded < 0) {
            cache_flush(cache, NULL, 0, -1);
            snapshot_meta_clear(&read);
            return -1;
        }
    }
    *meta = read;
    return loaded;
}

int64_t snapshot_load(const struct config *config, struct cache *cache, uint64_t now_ms,
                      uint64_t wall_ms, struct snapshot_meta *meta, char *error)
{
    const char *path = config->snapshot.path;
    memset(meta, 0, sizeof(*meta));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(error, ERROR_MAX, "cannot open %.100s: %.100s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(error, ERROR_MAX, "%.100s is not a regular file", path);
        close(fd);
        return -1;
    }
    /* A snapshot is about the size of the cache it came from. */
    uint64_t limit = config->memory.max_bytes * 4 + 64 * 1024 * 1024;
    if ((uint64_t)st.st_size > limit) {
        snprintf(error, ERROR_MAX, "%.100s is too large (%lld bytes)", path,
                 (long long)st.st_size);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        snprintf(error, ERROR_MAX, "not a tenantcached snapshot");
        return -1;
    }
    /* Mapped, not read: the file is decoded in place, without a copy. */
    void *data = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) {
        snprintf(error, ERROR_MAX, "cannot read %.100s: %.100s", path, strerror(errno));
        return -1;
    }
    int64_t loaded = snapshot_decode(config, data, size, cache, now_ms, wall_ms, meta, error);
    munmap(data, size);
    return loaded;
}

/* ---- the saver ---- */

struct snapshot_saver {
    struct event_base *base;
    struct cache *cache;
    char *path;
    uint64_t interval_ms;
    snapshot_meta_fn *meta_fn;
    void *arg;

    struct event *interval_timer;
    struct event *step_event;    /* copies the next shard */
    struct event *poll_timer;    /* waits for the writing thread */

    const struct config *config; /* borrowed; swapped on reload */
    struct snapshot_writer *writer;
    unsigned next_shard;
    uint64_t started_us;
    uint64_t longest_stall_us;

    bool thread_running;
    pthread_t thread;
    char *thread_path;
    atomic_bool thread_done;
    int thread_status;
    char thread_error[ERROR_MAX];
};

static struct snapshot_writer *saver_begin(struct snapshot_saver *saver,
                                           const struct config *config)
{
    struct snapshot_meta meta = {0};
    if (saver->meta_fn != NULL)
        saver->meta_fn(saver->arg, &meta);
    struct snapshot_writer *writer = snapshot_writer_begin(config, &meta, util_realtime_ms());
    snapshot_meta_clear(&meta);
    return writer;
}

static void saver_record(struct snapshot_saver *saver, int status, uint64_t entries,
                         const char *error)
{
    uint64_t took_ms = (util_monotonic_us() - saver->started_us) / 1000;
    if (status != 0) {
        log_error("snapshot: %s", error);
        return;
    }
    stats_set(&stats.snapshot_saved_at, util_realtime_ms() / 1000);
    stats_set(&stats.snapshot_entries, entries);
    stats_set(&stats.snapshot_save_ms, took_ms);
    stats_set(&stats.snapshot_stall_us, saver->longest_stall_us);
    log_info("snapshot: %llu entries written to %s in %llu ms (longest shard copy %llu us)",
             (unsigned long long)entries, saver->path, (unsigned long long)took_ms,
             (unsigned long long)saver->longest_stall_us);
}

static void *saver_thread(void *arg)
{
    struct snapshot_saver *saver = arg;
    saver->thread_status =
        snapshot_writer_commit(saver->writer, saver->thread_path, saver->thread_error);
    atomic_store(&saver->thread_done, true);
    return NULL;
}

static void saver_join(struct snapshot_saver *saver)
{
    if (!saver->thread_running)
        return;
    pthread_join(saver->thread, NULL);
    saver->thread_running = false;
    saver_record(saver, saver->thread_status, snapshot_writer_entries(saver->writer),
                 saver->thread_error);
    snapshot_writer_free(saver->writer);
    saver->writer = NULL;
    free(saver->thread_path);
    saver->thread_path = NULL;
    event_del(saver->poll_timer);
}

static void saver_poll(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct snapshot_saver *saver = arg;
    if (saver->thread_running && atomic_load(&saver->thread_done))
        saver_join(saver);
}

static void saver_step(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct snapshot_saver *saver = arg;
    if (saver->writer == NULL)
        return;
    if (saver->next_shard < cache_shard_count(saver->cache)) {
        uint64_t held = snapshot_writer_add_shard(saver->writer, saver->cache, saver->next_shard++,
                                                  util_monotonic_ms(), util_realtime_ms());
        if (held > saver->longest_stall_us)
            saver->longest_stall_us = held;
        event_active(saver->step_event, EV_TIMEOUT, 0); /* the next one after the loop's turn */
        return;
    }
    saver->thread_path = xstrdup(saver->path);
    atomic_store(&saver->thread_done, false);
    if (pthread_create(&saver->thread, NULL, saver_thread, saver) != 0) {
        log_error("snapshot: cannot start the writing thread");
        snapshot_writer_free(saver->writer);
        saver->writer = NULL;
        free(saver->thread_path);
        saver->thread_path = NULL;
        return;
    }
    saver->thread_running = true;
    struct timeval every = util_timeval_from_ms(20);
    event_add(saver->poll_timer, &every);
}

static void saver_tick(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct snapshot_saver *saver = arg;
    if (saver->writer != NULL || saver->thread_running)
        return; /* the previous one is still being written */
    saver->writer = saver_begin(saver, saver->config);
    saver->next_shard = 0;
    saver->longest_stall_us = 0;
    saver->started_us = util_monotonic_us();
    event_active(saver->step_event, EV_TIMEOUT, 0);
}

static void saver_arm(struct snapshot_saver *saver)
{
    event_del(saver->interval_timer);
    if (saver->interval_ms == 0)
        return;
    struct timeval every = util_timeval_from_ms(saver->interval_ms);
    event_add(saver->interval_timer, &every);
}

struct snapshot_saver *snapshot_saver_create(struct event_base *base, struct cache *cache,
                                             const struct config *config,
                                             snapshot_meta_fn *meta_fn, void *arg)
{
    if (config->snapshot.path[0] == '\0')
        return NULL;
    struct snapshot_saver *saver = xcalloc(1, sizeof(*saver));
    saver->base = base;
    saver->cache = cache;
    saver->path = xstrdup(config->snapshot.path);
    saver->interval_ms = config->snapshot.interval_ms;
    saver->meta_fn = meta_fn;
    saver->arg = arg;
    saver->config = config;
    saver->interval_timer = event_new(base, -1, EV_PERSIST, saver_tick, saver);
    saver->step_event = event_new(base, -1, 0, saver_step, saver);
    saver->poll_timer = event_new(base, -1, EV_PERSIST, saver_poll, saver);
    if (saver->interval_timer == NULL || saver->step_event == NULL || saver->poll_timer == NULL)
        log_fatal("cannot create the snapshot timers");
    saver_arm(saver);
    return saver;
}

void snapshot_saver_reconfigure(struct snapshot_saver *saver, const struct config *config)
{
    if (saver == NULL)
        return;
    saver->config = config;
    if (config->snapshot.path[0] != '\0' && strcmp(config->snapshot.path, saver->path) != 0) {
        free(saver->path);
        saver->path = xstrdup(config->snapshot.path);
    }
    if (config->snapshot.interval_ms != saver->interval_ms) {
        saver->interval_ms = config->snapshot.interval_ms;
        saver_arm(saver);
    }
}

void snapshot_saver_stop(struct snapshot_saver *saver)
{
    if (saver == NULL)
        return;
    saver_join(saver);
    event_del(saver->step_event);
    snapshot_writer_free(saver->writer); /* a save between two shards: started over */
    saver->writer = saver_begin(saver, saver->config);
    saver->longest_stall_us = 0;
    saver->started_us = util_monotonic_us();
    for (unsigned shard = 0; shard < cache_shard_count(saver->cache); shard++)
        snapshot_writer_add_shard(saver->writer, saver->cache, shard, util_monotonic_ms(),
                                  util_realtime_ms());
    char error[ERROR_MAX];
    int status = snapshot_writer_commit(saver->writer, saver->path, error);
    saver_record(saver, status, snapshot_writer_entries(saver->writer), error);
    snapshot_writer_free(saver->writer);
    event_free(saver->interval_timer);
    event_free(saver->step_event);
    event_free(saver->poll_timer);
    free(saver->path);
    free(saver);
}
