/* transaction.c - MULTI/EXEC/DISCARD/WATCH/UNWATCH (see transaction.h).
 *
 * The queue is private copies of the requests. EXEC answers the array
 * header and runs each queued request as one step of its own run
 * (commands_run_step(), blocked.h): a failed fill or a reply too large is
 * that element's error, and when any of them misses and must wait for
 * fills, blocked.c parks EXEC as a whole, discards what it wrote and runs it
 * again - queue and all - once every fill answered (the answers are shared
 * by the queued commands, as by one multi-key command; docs/reference.md §4).
 * Nothing a client may write can change a key, so WATCH has nothing to
 * watch: it answers +OK, and EXEC never fails for a watched key. */
#include "transaction.h"

#include <stdlib.h>
#include <string.h>

#include "blocked.h"
#include "command_call.h"
#include "protocol.h"
#include "reply.h"
#include "util.h"

/* What a queued request costs against the limit beyond its argument bytes. */
#define QUEUED_OVERHEAD 64
#define QUEUED_ARG_OVERHEAD 16

struct queued_request {
    struct protocol_request request;
    char *data;
};

struct transaction {
    struct queued_request *queued;
    size_t count;
    size_t capacity;
    uint64_t bytes;  /* charged against the limit: arguments plus overheads */
    bool failed;     /* an error while queueing: EXEC answers -EXECABORT */
};

bool transaction_queueing(const struct commands_client *client)
{
    return client->transaction != NULL && !client->in_exec;
}

long transaction_queued(const struct commands_client *client)
{
    return client->transaction != NULL ? (long)client->transaction->count : -1;
}

void transaction_fail(struct commands_client *client)
{
    if (client->transaction != NULL)
        client->transaction->failed = true;
}

void transaction_free(struct commands_client *client)
{
    struct transaction *transaction = client->transaction;
    if (transaction == NULL)
        return;
    for (size_t i = 0; i < transaction->count; i++) {
        free(transaction->queued[i].request.argv);
        free(transaction->queued[i].request.argv_len);
        free(transaction->queued[i].data);
    }
    free(transaction->queued);
    free(transaction);
    client->transaction = NULL;
}

void transaction_queue(struct commands_client *client, const struct protocol_request *request,
                       uint64_t limit_bytes, struct reply_buffer *out)
{
    struct transaction *transaction = client->transaction;
    uint64_t cost = QUEUED_OVERHEAD;
    for (size_t i = 0; i < request->argc; i++)
        cost += request->argv_len[i] + QUEUED_ARG_OVERHEAD;
    if (transaction->bytes + cost > limit_bytes) {
        transaction->failed = true;
        reply_error(out, "ERR transaction too large (listen.max_reply_backlog)");
        return;
    }
    if (transaction->count == transaction->capacity) {
        transaction->capacity = transaction->capacity ? transaction->capacity * 2 : 8;
        transaction->queued =
            xrealloc(transaction->queued, transaction->capacity * sizeof(*transaction->queued));
    }
    struct queued_request *queued = &transaction->queued[transaction->count++];
    size_t total = 0;
    for (size_t i = 0; i < request->argc; i++)
        total += request->argv_len[i];
    queued->data = xmalloc(total ? total : 1);
    queued->request.argc = request->argc;
    queued->request.argv = xmalloc(request->argc * sizeof(*queued->request.argv));
    queued->request.argv_len = xmalloc(request->argc * sizeof(*queued->request.argv_len));
    char *cursor = queued->data;
    for (size_t i = 0; i < request->argc; i++) {
        memcpy(cursor, request->argv[i], request->argv_len[i]);
        queued->request.argv[i] = cursor;
        queued->request.argv_len[i] = request->argv_len[i];
        cursor += request->argv_len[i];
    }
    transaction->bytes += cost;
    reply_status(out, "QUEUED");
}

void transaction_command_multi(struct command_call *call)
{
    if (call->client->transaction != NULL) {
        reply_error(call->out, "ERR MULTI calls can not be nested");
        return;
    }
    call->client->transaction = xcalloc(1, sizeof(struct transaction));
    reply_status(call->out, "OK");
}

void transaction_command_discard(struct command_call *call)
{
    if (call->client->transaction == NULL) {
        reply_error(call->out, "ERR DISCARD without MULTI");
        return;
    }
    transaction_free(call->client);
    reply_status(call->out, "OK");
}

void transaction_command_exec(struct command_call *call)
{
    struct commands_client *client = call->client;
    struct transaction *transaction = client->transaction;
    if (transaction == NULL) {
        reply_error(call->out, "ERR EXEC without MULTI");
        return;
    }
    if (transaction->failed) {
        transaction_free(client);
        reply_error(call->out, "EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    /* Every queued command runs, even after one waits, so that all the
     * misses of the transaction are filled at once. */
    reply_array(call->out, transaction->count);
    client->in_exec = true;
    for (size_t i = 0; i < transaction->count; i++)
        commands_run_step(call->env, client, &transaction->queued[i].request, call->now_ms);
    client->in_exec = false;
    /* A parked EXEC runs again with the same queue. */
    if (!blocked_run_waits(client->blocked))
        transaction_free(client);
}

void transaction_command_watch(struct command_call *call)
{
    if (call->client->transaction != NULL) {
        reply_error(call->out, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    reply_status(call->out, "OK");
}

void transaction_command_unwatch(struct command_call *call)
{
    reply_status(call->out, "OK");
}
