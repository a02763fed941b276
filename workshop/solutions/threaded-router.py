#!/usr/bin/env python3
"""threaded-router.py - exercise 5, step 1, worked: the mutex pattern in Python.

Pattern: router-mutex --variant per-connection-lock. A thread per client reads its socket and
forwards each frame itself: it looks the destination up in the table under `table_lock` (held
for the lookup only), then writes to the destination's socket holding that connection's own
`wlock`, so frames never interleave. Nothing is queued: a sender whose destination does not
read blocks in its write, and so stops reading its own client (backpressure by blocking).
SO_SNDTIMEO turns a write that moves no byte for --write-timeout into a slow consumer, which
is shut down, and its sender told "destination N too slow".

The GIL lets one thread run Python at a time: the threads overlap their waiting (reads,
writes) but not their Python work, so --work-us does not spread over the cores as it does in
the C routers.

    python3 workshop/solutions/threaded-router.py --port 0
    make check ROUTER='python3 workshop/solutions/threaded-router.py'
"""
import argparse, collections, errno, resource, secrets, select, signal, socket, struct, sys, threading, time, zlib

RESERVED_FDS = 32
LINGER_S = 2.0


class Conn:
    def __init__(self, sock, cid):
        self.sock, self.id = sock, cid
        self.wlock = threading.Lock()  # serializes writes to sock, and its close
        self.slow = False  # it took no byte for --write-timeout: no more writes to it
        self.closed = False


class Router:
    def __init__(self, opt):
        self.opt = opt
        self.table_lock = threading.Lock()  # guards table, stats, threads, used_ids
        self.table, self.stats, self.threads = {}, collections.Counter(), set()
        self.next_id, self.used_ids = 1, set()
        self.listener = socket.create_server((opt.host, opt.port))

    def summary(self, label=""):
        with self.table_lock:
            s = dict(self.stats)
        work = f", worked {self.opt.work_us} us on each of {s.get('worked', 0)} frames" if self.opt.work_us else ""
        print(f"threaded-router: {label}served {s.get('served', 0)} clients, forwarded {s.get('frames', 0)} "
              f"frames ({s.get('bytes', 0)} bytes), dropped {s.get('dropped', 0)} frames, sent "
              f"{s.get('errors', 0)} error frames, evicted {s.get('slow', 0)} slow consumers{work}",
              file=sys.stderr, flush=True)

    def count(self, key, n=1):
        with self.table_lock:
            self.stats[key] += n

    def new_id(self):  # under table_lock
        if self.opt.ids == "sequential":
            self.next_id += 1
            return self.next_id - 1
        while True:
            cid = secrets.randbits(32)
            if cid and cid not in self.used_ids:
                self.used_ids.add(cid)
                return cid

    # ---- writing: the per-connection lock ----

    def write(self, d, data):
        """Write to d under its own lock. Returns 'ok', 'gone', or 'slow' (it timed out now or before)."""
        with d.wlock:
            if d.closed:
                return "gone"
            if d.slow:
                return "slow"
            try:
                d.sock.sendall(data)
                return "ok"
            except (BlockingIOError, socket.timeout):  # SO_SNDTIMEO: no byte moved for the timeout
                d.slow = True
            except OSError:
                return "gone"
        print(f"threaded-router: client {d.id}: took no bytes for {self.opt.write_timeout:.1f} s: "
              "disconnected as a slow consumer", file=sys.stderr, flush=True)
        self.count("slow")
        try:
            d.sock.shutdown(socket.SHUT_RDWR)  # its own thread sees the end, and leaves
        except OSError:
            pass
        return "evicted"

    def error(self, c, reason):
        if self.opt.error_frames and self.write(c, b"\xff" + reason.encode() + b"\0") == "ok":
            self.count("errors")

    def forward(self, c, dest, body, told):
        with self.table_lock:  # the lookup only: no I/O under the table lock
            d = self.table.get(dest)
        if d is None:
            self.count("dropped")
            return self.error(c, f"unknown destination {dest}")
        result = self.write(d, body)
        if result == "ok":
            with self.table_lock:
                self.stats["frames"] += 1
                self.stats["bytes"] += len(body)
            return
        self.count("dropped")
        if told.get("about") != dest:  # once per destination
            told["about"] = dest
            self.error(c, f"destination {dest} {'failed' if result == 'gone' else 'too slow'}")

    # ---- a client's thread ----

    def client(self, c):
        told, inbox, limit = {}, bytearray(), self.opt.max_message
        too_long = False
        try:
            while not too_long:
                data = c.sock.recv(65536)
                if not data:
                    break
                inbox += data
                start = 0
                while len(inbox) - start > 4:  # every complete frame before the next read
                    nul = inbox.find(0, start + 4, start + 5 + limit)
                    if nul < 0:
                        too_long = len(inbox) - start - 4 > limit
                        break
                    dest = int.from_bytes(inbox[start:start + 4], "big")
                    body = bytes(inbox[start + 4:nul + 1])
                    start = nul + 1
                    if self.opt.work_us:
                        work(body, self.opt.work_us)
                        self.count("worked")
                    self.forward(c, dest, body, told)
                del inbox[:start]
        except OSError:
            pass
        if too_long:
            self.error(c, "message too long")
        with self.table_lock:
            self.table.pop(c.id, None)
        if too_long:  # the client may still be sending: read and discard, so it gets no reset
            linger(c.sock)
        try:
            c.sock.shutdown(socket.SHUT_RDWR)  # wakes a sender blocked writing to it
        except OSError:
            pass
        with c.wlock:  # no writer is in sendall now: the fd can close
            c.closed = True
            c.sock.close()
        with self.table_lock:
            self.threads.discard(threading.current_thread())

    # ---- the acceptor ----

    def accept(self):
        sock, _ = self.listener.accept()
        with self.table_lock:
            full = len(self.threads) >= self.opt.max_clients
            cid = 0 if full else self.new_id()
        if full:
            try:
                if self.opt.error_frames and sock.send(b"\xffserver full\0", socket.MSG_DONTWAIT) == 13:
                    self.count("errors")
            except OSError:
                pass
            return sock.close()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.opt.write_timeout:
            sec = int(self.opt.write_timeout)
            usec = int((self.opt.write_timeout - sec) * 1e6)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", sec, usec))
        try:  # a fresh socket takes 4 bytes at once; nobody else knows this client yet
            sock.sendall(cid.to_bytes(4, "big"))
        except OSError:
            return sock.close()
        c = Conn(sock, cid)
        t = threading.Thread(target=self.client, args=(c,), daemon=True)
        with self.table_lock:  # in the table once its ID is out: no frame overtakes the ID
            self.table[cid] = c
            self.threads.add(t)
            self.stats["served"] += 1
        t.start()

    def run(self, wakeup):
        stats_every = self.opt.stats_interval
        next_stats = time.monotonic() + stats_every if stats_every else None
        while True:
            timeout = max(0.0, next_stats - time.monotonic()) if next_stats else None
            ready, _, _ = select.select([self.listener, wakeup], [], [], timeout)
            if wakeup in ready:
                break
            if self.listener in ready:
                try:
                    self.accept()
                except OSError as e:
                    if e.errno in (errno.EMFILE, errno.ENFILE):
                        time.sleep(0.1)  # out of descriptors: back off, do not spin
            if next_stats and time.monotonic() >= next_stats:
                self.summary("stats: ")
                next_stats += stats_every
        self.listener.close()
        with self.table_lock:
            conns, threads = list(self.table.values()), list(self.threads)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(5)


def linger(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER_S)
        end = time.monotonic() + LINGER_S
        while time.monotonic() < end and sock.recv(65536):
            pass
    except OSError:
        pass


def work(body, us):  # as in example-router.py; here it holds the GIL
    end, x, data = time.perf_counter_ns() + us * 1000, 0, body or b"\0"
    while time.perf_counter_ns() < end:
        x = zlib.crc32(data, x)
    return x


def fit_descriptors(opt):
    want = opt.max_clients + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < want:
        if soft <= RESERVED_FDS:
            sys.exit(f"threaded-router: the open-file limit is {soft}: it needs more than {RESERVED_FDS}")
        print(f"threaded-router: the open-file limit is {soft} and cannot be raised: --max-clients "
              f"lowered from {opt.max_clients} to {soft - RESERVED_FDS} (raise it with ulimit -n)",
              file=sys.stderr, flush=True)
        opt.max_clients = soft - RESERVED_FDS


def main():
    p = argparse.ArgumentParser(prog="threaded-router", description="a thread per client, a lock per socket")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--ids", choices=["sequential", "random"], default="sequential")
    p.add_argument("--max-message", type=int, default=65536)
    p.add_argument("--max-clients", type=int, default=10000)
    p.add_argument("--max-pending", type=int, default=1 << 20, help="accepted: nothing is queued")
    p.add_argument("--no-error-frames", dest="error_frames", action="store_false")
    p.add_argument("--write-timeout", type=float, default=10.0)
    p.add_argument("--work-us", type=int, default=0)
    p.add_argument("--stats-interval", type=float, default=0.0)
    p.add_argument("--verbose", "--quiet", action="store_true", help="accepted, no effect")
    opt = p.parse_args()
    fit_descriptors(opt)
    threading.stack_size(256 * 1024)
    try:
        router = Router(opt)
    except OSError as e:
        sys.exit(f"threaded-router: bind {opt.host}:{opt.port}: {e.strerror}")
    wakeup, wakeup_w = socket.socketpair()
    wakeup_w.setblocking(False)
    signal.set_wakeup_fd(wakeup_w.fileno(), warn_on_full_buffer=False)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    print("listening on %s:%d" % router.listener.getsockname()[:2], flush=True)
    router.run(wakeup)
    router.summary()


if __name__ == "__main__":
    main()
