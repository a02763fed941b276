#!/usr/bin/env python3
"""fanout.py - exercise 4's stretch, worked: one sender, many receivers that never read.

    python3 workshop/solutions/fanout.py PORT [RECEIVERS] [ROUTER_PID]

Connects RECEIVERS clients (default 50) that never read, and one sender that writes 16 KiB
frames to them in turn until the router has taken nothing from it for one second (or 30 s have
passed). Prints how much the router took, and with ROUTER_PID its peak resident memory. A
per-destination limit lets one sender fill every receiver's queue; a per-sender budget stops
it once its frames across all of them reach the budget.
"""
import os, socket, struct, sys, time

FRAME = 16 * 1024


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    first = s.recv(4, socket.MSG_WAITALL)
    if len(first) < 4 or first[0] == 0xFF:
        sys.exit("fanout.py: the router refused a client")
    return s, struct.unpack(">I", first)[0]


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    pid = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    receivers = [connect(port) for _ in range(n)]
    sender, _ = connect(port)
    sender.setblocking(False)
    frames = [struct.pack(">I", rid) + b"f" * FRAME + b"\0" for _, rid in receivers]
    sent, i, pending = 0, 0, b""
    start = last_progress = time.monotonic()
    while time.monotonic() - last_progress < 1.0 and time.monotonic() - start < 30:
        if not pending:
            pending = frames[i % n]
            i += 1
        try:
            k = sender.send(pending)
        except BlockingIOError:
            time.sleep(0.005)
            continue
        pending = pending[k:]
        sent += k
        last_progress = time.monotonic()
    peak = f", router peak RSS {peak_rss_mib(pid):.1f} MiB" if pid else ""
    print(f"fanout: {n} receivers that never read; the router took {sent / 2**20:.1f} MiB from the "
          f"sender before it stopped reading it{peak}")
    for s, _ in receivers:
        s.close()
    sender.close()


if __name__ == "__main__":
    main()
