/* report.h - the INFO and HEALTH commands (report.c): the daemon's figures
 * over the socket, from the counters table (counters.h) and the cache.
 * Their handlers are rows of the command table (command_call.h). */
#ifndef TENANTCACHED_REPORT_H
#define TENANTCACHED_REPORT_H

#include "command_call.h"

struct config;

/* Memory use (a fraction of memory.max_bytes) above which HEALTH says
 * CRITICAL and advises raising memory.max_bytes; the lower levels are the
 * configured watermarks. */
#define REPORT_CRITICAL_RATIO 0.9

/* HEALTH's status for memory use `ratio` (a fraction of memory.max_bytes):
 * LOW below memory.low_watermark, MODERATE from it, HIGH above
 * memory.high_watermark, CRITICAL above REPORT_CRITICAL_RATIO. Cannot fail;
 * returns a static string. */
const char *report_health_status(double ratio, const struct config *config);

command_handler report_command_info;
command_handler report_command_health;

#endif
