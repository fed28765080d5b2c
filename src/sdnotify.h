/*
 * sdnotify.h - tell systemd READY, WATCHDOG and STATUS (Type=notify).
 *
 * With libsystemd at build time (HAVE_SYSTEMD) this is sd_notify(); without
 * it, the same one-datagram protocol written here (AF_UNIX SOCK_DGRAM to
 * $NOTIFY_SOCKET, '@' meaning the abstract namespace).  Nothing happens
 * when NOTIFY_SOCKET is unset.
 *
 * WATCHDOG=1 is sent by the action thread only when the scanner's tick
 * counter moved since the previous ping: a scanner that is stuck stops the
 * pings and systemd restarts vigild, which a separate timer thread would
 * never do.
 */
#ifndef VIGIL_SDNOTIFY_H
#define VIGIL_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC (honouring WATCHDOG_PID).
 * Returns the watchdog period in microseconds (0: no watchdog). */
uint64_t vigil_sd_init(void);
bool vigil_sd_enabled(void);
/* Sends one message ("READY=1", "STATUS=...", ...); 0 or -errno. */
int vigil_sd_notify(const char *msg);

#endif /* VIGIL_SDNOTIFY_H */
