/*
 * proc_probe.h - what /proc tells about a running process: its descriptors, threads and memory.
 * The conformance suite reads them to check that a router gives back what each client took.
 * Each returns -1 if the process is gone or /proc cannot be read.
 */
#ifndef PROC_PROBE_H
#define PROC_PROBE_H

#include <stdbool.h>
#include <sys/types.h>

int proc_count_fds(pid_t pid);     /* open file descriptors (/proc/PID/fd) */
int proc_count_threads(pid_t pid); /* threads (Threads in /proc/PID/status) */
long proc_rss_kib(pid_t pid);      /* resident set size in KiB (VmRSS) */
long proc_peak_rss_kib(pid_t pid); /* peak resident set size in KiB (VmHWM) */

/* What a process has used so far, for the difference between two moments. */
struct proc_usage {
    double cpu_s;    /* user + system CPU time, every thread, those gone too (/proc/PID/stat) */
    long long syscr; /* read-like system calls (read, readv, recv...: /proc/PID/io) */
    long long syscw; /* write-like system calls (write, writev, send...) */
    long long ctxt;  /* context switches of the threads alive now (/proc/PID/task/N/status),
                        or -1 if not asked for */
};

/* Fill *u; returns 0, or -1 if the process is gone or /proc cannot be read (io needs the
 * right to trace it: the same user, or root). switches: read ctxt too, two files per thread of
 * pid (about 30 us each: 0.6 s for a router with 20,000 threads); otherwise ctxt is -1. */
int proc_usage(pid_t pid, struct proc_usage *u, bool switches);

#endif
