/* stats.c - the single instance of the daemon's counters (see stats.h). */
#include "stats.h"

struct stats stats;
