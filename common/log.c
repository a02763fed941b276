/* log.c - see log.h. Each message is one fprintf, so lines from threads do not interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *program = "router";
static enum log_level threshold = LOG_INFO;

void log_set_program(const char *name)
{
    program = name;
}

void log_set_level(enum log_level level)
{
    threshold = level;
}

static void emit(enum log_level level, const char *fmt, va_list ap)
{
    if (level < threshold)
        return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "%s: %s\n", program, line);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_DEBUG, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_INFO, fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_WARN, fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_WARN, fmt, ap);
    va_end(ap);
    exit(1);
}
