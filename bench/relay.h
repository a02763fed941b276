/*
 * relay.h - the relay floor, run as `loadgen relay [--host ADDR] [--port N]`.
 *
 * A bare single-threaded forwarder: it pairs connections in accept order and copies bytes
 * from each to its partner without parsing them. Its figures are the floor that every
 * router is set beside, measured in the same run on the same machine.
 */
#ifndef RELAY_H
#define RELAY_H

#include <stdint.h>

/* The fake ID the relay gives its k-th connection (from 0): none of its bytes is zero. */
uint32_t relay_id(uint64_t k);

/* Runs the relay until SIGINT or SIGTERM. Returns the process exit status. */
int relay_main(int argc, char **argv);

#endif
