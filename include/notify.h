/* notify.h - the systemd notification protocol (sd_notify(3)) without libsystemd.
 *
 * A datagram of "KEY=VALUE" lines to the socket named by $NOTIFY_SOCKET
 * (a path, or an abstract name starting with '@'). Without the variable every
 * call does nothing, so the daemon runs the same outside systemd. */
#ifndef TENANTCACHED_NOTIFY_H
#define TENANTCACHED_NOTIFY_H

#include <stdint.h>

/* Sends state (e.g. "READY=1\nSTATUS=listening"). Returns 0, or -1 if
 * $NOTIFY_SOCKET is set but the datagram could not be sent. */
int notify_send(const char *state);
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Half of $WATCHDOG_USEC in milliseconds (at least 1) when the watchdog is
 * enabled for this process ($WATCHDOG_PID unset or ours), else 0. Values that
 * are not plain decimal numbers disable it, as sd_watchdog_enabled(3) does. */
uint64_t notify_watchdog_interval_ms(void);

#endif
