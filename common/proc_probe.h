/*
 * proc_probe.h - what /proc tells about a running process: its descriptors, threads and memory.
 * The conformance suite reads them to check that a router gives back what each client took.
 * Each returns -1 if the process is gone or /proc cannot be read.
 */
#ifndef PROC_PROBE_H
#define PROC_PROBE_H

#include <sys/types.h>

int proc_count_fds(pid_t pid);     /* open file descriptors (/proc/PID/fd) */
int proc_count_threads(pid_t pid); /* threads (Threads in /proc/PID/status) */
long proc_rss_kib(pid_t pid);      /* resident set size in KiB (VmRSS) */
long proc_peak_rss_kib(pid_t pid); /* peak resident set size in KiB (VmHWM) */

#endif
