/* lg.c - what every part of loadgen uses: its clock and its way to fail. See loadgen.h. */
#include <stdarg.h>
#include <stdio.h>

#include "loadgen.h"

uint64_t lg_now(const struct loadgen *lg)
{
    return uv_hrtime() - lg->epoch;
}

void lg_fail(struct loadgen *lg, const char *fmt, ...)
{
    if (lg->failed || lg->done)
        return;
    lg->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lg->error, sizeof lg->error, fmt, ap);
    va_end(ap);
    uv_stop(lg->loop);
}
