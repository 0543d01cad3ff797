/* Time in milliseconds, the one way tern reads the clock. */
#ifndef TERN_CORE_CLOCK_H
#define TERN_CORE_CLOCK_H

#include <stdint.h>

/* Wall-clock time (for anything stored or compared across restarts). */
uint64_t clock_wall_ms(void);
/* Monotonic time (for durations inside one process). */
uint64_t clock_mono_ms(void);

#endif
