/* notify.c - sd_notify(3) over a datagram socket, no libsystemd (see notify.h). */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(address.sun_path))
        return -1;
    memcpy(address.sun_path, path, len);
    if (path[0] == '@')
        address.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&address,
                          address_len);
    close(fd);
    return sent < 0 ? -1 : 0;
}

int notify_sendf(const char *fmt, ...)
{
    char state[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(state, sizeof(state), fmt, args);
    va_end(args);
    return notify_send(state);
}

/* Reads a whole string of decimal digits; false for anything else (a sign,
 * spaces, trailing text, overflow), as sd_watchdog_enabled(3) refuses them. */
static bool parse_decimal(const char *text, unsigned long long *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = value;
    return true;
}

uint64_t notify_watchdog_interval_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    unsigned long long value = 0;
    if (usec == NULL || !parse_decimal(usec, &value) || value == 0)
        return 0;
    const char *pid = getenv("WATCHDOG_PID");
    unsigned long long owner = 0;
    if (pid != NULL && pid[0] != '\0' &&
        (!parse_decimal(pid, &owner) || owner != (unsigned long long)getpid()))
        return 0;
    /* Never 0 when enabled: 0 would mean "off" and systemd would kill us. */
    return value >= 2000u ? value / 2000u : 1;
}
