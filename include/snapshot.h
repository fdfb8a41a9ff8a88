/* snapshot.h - warm restart: the cache written to snapshot.path and read
 * back at start (docs/reference.md §6).
 *
 * The file holds every value and tombstone (tenant, kind name, key, JSON
 * value, version, expiry as wall-clock time, tier), the stream's last applied
 * ID and each publisher's last seq. Format (integers little-endian):
 *
 *   "TCSNAP\r\n"  u32 format version (2)  u64 saved at (wall ms)
 *   u32 kinds, each: u8 name length, name, u8 tier, u8 shape
 *   u8 has stream ID, u64 ms, u64 seq
 *   u32 publishers, each: u16 src length, src, u64 seq
 *   records, each: u8 1, u8 state (0 value, 1 tombstone), u8 kind (index in
 *     the file's kinds), u8 tenant length, tenant, u16 key length, key,
 *     u32 JSON length, JSON, u64 version, u64 expires (wall ms, 0: never),
 *     u64 updated (wall ms)
 *   u8 0, u64 record count
 *   u64 snapshot_checksum() of every byte before it
 *
 * Writing does not stop the loop: a save copies one cache shard per loop
 * iteration (each shard's read lock held only for its copy) and a thread of
 * its own writes the file (temporary file, fsync, rename, fsync of the
 * directory). Messages applied between two shards' copies are in the
 * stream after the ID recorded at the start, and replaying them is
 * harmless: every operation sets an entry's final state.
 *
 * Reading maps the file and checks it whole (checksum, the framing of every
 * record) before anything goes into the cache: a missing, truncated, corrupt
 * or incompatible file is reported and changes nothing. Then up to
 * config->threads threads (at most four) load it, each its own run of
 * records, parsing each value once against its kind's shape. Records of a
 * kind saved under another shape than the config gives it are left out; a
 * value that does not fit its kind although the checksum holds (a file not
 * written by the daemon) makes the load fail, and what was loaded is
 * dropped again. */
#ifndef TENANTCACHED_SNAPSHOT_H
#define TENANTCACHED_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "errors.h"

struct cache;
struct config;
struct event_base;

struct snapshot_publisher {
    char *src;
    uint64_t seq;
};

/* What a snapshot holds besides the entries. Owns its publishers. */
struct snapshot_meta {
    bool has_stream_id;
    struct envelope_id stream_id;
    struct snapshot_publisher *publishers;
    size_t publisher_count;
    uint64_t saved_at_ms;  /* wall clock; set by the writer */
};

/* Adds a publisher (src copied). Cannot fail. */
void snapshot_meta_add_publisher(struct snapshot_meta *meta, const char *src, uint64_t seq);
void snapshot_meta_clear(struct snapshot_meta *meta);

/* The checksum a file ends with, of data[0..len): FNV-1a 64 over
 * little-endian 64-bit words (the last one zero-padded), then the length.
 * Exported for the fuzz target, which appends it to its inputs. */
uint64_t snapshot_checksum(const unsigned char *data, size_t len);

/* ---- reading ---- */

/* Checks data[0..len) whole against config, then (cache non-NULL) loads its
 * unexpired entries of kinds the config caches into cache and fills meta
 * (clear it with snapshot_meta_clear()). Returns the number of entries
 * loaded (0 with cache NULL), or -1 with the reason in error and nothing
 * loaded: the cache is expected empty (it is emptied again when a value
 * fails its shape part way through). now_ms is monotonic, wall_ms the wall
 * clock. */
int64_t snapshot_decode(const struct config *config, const unsigned char *data, size_t len,
                        struct cache *cache, uint64_t now_ms, uint64_t wall_ms,
                        struct snapshot_meta *meta, char *error);

/* Reads config->snapshot.path and decodes it as above. A missing file is -1
 * too ("no snapshot at PATH"): the caller logs and starts empty. */
int64_t snapshot_load(const struct config *config, struct cache *cache, uint64_t now_ms,
                      uint64_t wall_ms, struct snapshot_meta *meta, char *error);

/* ---- writing ---- */

struct snapshot_writer;

/* Starts a snapshot with meta (copied). Cannot fail. */
struct snapshot_writer *snapshot_writer_begin(const struct config *config,
                                              const struct snapshot_meta *meta, uint64_t wall_ms);
/* Copies one shard's entries (under its read lock). Returns how long the
 * lock was held, in microseconds. */
uint64_t snapshot_writer_add_shard(struct snapshot_writer *writer, struct cache *cache,
                                   unsigned shard, uint64_t now_ms, uint64_t wall_ms);
uint64_t snapshot_writer_entries(const struct snapshot_writer *writer);
/* Seals the snapshot and writes it to path atomically. Blocking (fsync): run
 * it outside the loop. Returns 0, or -1 with the reason in error (the
 * previous file, if any, is then untouched). Any thread. */
int snapshot_writer_commit(struct snapshot_writer *writer, const char *path, char *error);
void snapshot_writer_free(struct snapshot_writer *writer);

/* ---- the daemon's saver ---- */

/* Fills meta at the start of a save (the stream's last ID, publishers). */
typedef void snapshot_meta_fn(void *arg, struct snapshot_meta *meta);

struct snapshot_saver;

/* Saves every config->snapshot.interval (0: never on a timer). NULL when
 * snapshot.path is "". The cache must outlive the saver. */
struct snapshot_saver *snapshot_saver_create(struct event_base *base, struct cache *cache,
                                             const struct config *config,
                                             snapshot_meta_fn *meta_fn, void *arg);
/* A reload: a new interval applies from now; a new path from the next save. */
void snapshot_saver_reconfigure(struct snapshot_saver *saver, const struct config *config);
/* A clean stop: waits for a save in progress, writes a last snapshot (in
 * this thread, whole), frees. NULL is a no-op. */
void snapshot_saver_stop(struct snapshot_saver *saver);

#endif
