#!/usr/bin/env python3
"""example-router.py - the router protocol in one Python thread, a starting point for exercise 5.

Pattern: the reactor. One loop (selectors) owns every connection and the ID table, so no state
is shared and nothing is locked. Each connection has an inbox (bytes not yet routed) and an
outbox (frames not yet written). Frames are queued during a turn of the loop and written at its
end, all of a destination's frames in one sendmsg.

Backpressure by not reading: a frame whose destination's outbox has no room (--max-pending)
stays in its sender's inbox, and the sender is not read until that outbox drains, so a slow
consumer stalls only the clients writing to it. An error frame needs room in the sender's own
outbox, so a sender that never reads its errors stops being read too. A destination whose
outbox makes no progress for --write-timeout seconds is a slow consumer: it is disconnected,
and its senders are told "destination N too slow". Its flaw: one core, whatever the machine has.

    python3 workshop/example-router.py --port 0      # prints "listening on 127.0.0.1:PORT"
    make check ROUTER='python3 workshop/example-router.py'
"""
import argparse, collections, errno, itertools, resource, secrets, selectors, signal, socket, sys, time, zlib

ERROR_FRAME_MAX = 128  # room an error frame needs in its receiver's outbox (as the C routers)
RESERVED_FDS = 32  # descriptors the router keeps for itself (PROTOCOL.md)
LINGER_S = 2.0  # a client sent away may still be sending: read and discard for this long
OPEN, QUITTING, LINGERING, CLOSED = "open", "quitting", "lingering", "closed"


class Conn:
    def __init__(self, sock, cid):
        self.sock, self.id, self.state = sock, cid, OPEN
        self.inbox = bytearray()  # bytes read but not routed: a partial frame, or frames that wait
        self.outbox = collections.deque()  # [bytes left, sender ID or 0, length], oldest first
        self.queued = 0  # bytes in outbox
        self.waiters = {}  # senders blocked on this outbox (a dict keeps their order)
        self.blocked_on = None  # the conn whose outbox this one waits for, or None
        self.since = 0.0  # when this outbox last made progress (while it has bytes)
        self.slow = False  # disconnected as a slow consumer
        self.told_about = 0  # the last departed destination this sender was told about
        self.linger_until = 0.0
        self.events = 0  # what the selector watches for it now


class Router:
    def __init__(self, opt):
        self.opt, self.sel = opt, selectors.DefaultSelector()
        self.conns = {}  # ID -> Conn, for OPEN conns: the table senders look up
        self.all = set()  # every conn holding a socket: what --max-clients limits
        self.dirty, self.ready = {}, {}  # outboxes to write this turn; senders to resume
        self.backlog = set()  # outboxes the kernel did not take in full: watched for --write-timeout
        self.next_id, self.used = 1, set()
        self.stats = collections.Counter()
        self.stopping, self.accept_paused_until = False, 0.0
        self.listener = socket.create_server((opt.host, opt.port))
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listener")

    # ---- IDs, logging, the selector ----

    def new_id(self):
        if self.opt.ids == "sequential":
            self.next_id += 1
            return self.next_id - 1
        while True:  # random: unique and never 0, remembering every ID handed out
            cid = secrets.randbits(32)
            if cid and cid not in self.used:
                self.used.add(cid)
                return cid

    def log(self, text):
        if not self.opt.quiet:
            print(f"example-router: {text}", file=sys.stderr, flush=True)

    def summary(self, label=""):
        s, work = self.stats, ""
        if self.opt.work_us:
            work = f", worked {self.opt.work_us} us on each of {s['worked']} frames"
        print(f"example-router: {label}served {s['served']} clients, forwarded {s['frames']} frames "
              f"({s['bytes']} bytes), dropped {s['dropped']} frames, sent {s['errors']} error "
              f"frames, evicted {s['slow']} slow consumers{work}", file=sys.stderr, flush=True)

    def watch(self, c):  # read while OPEN and not blocked (or to discard, lingering); write while backlogged
        events = 0
        if (c.state == OPEN and c.blocked_on is None) or c.state == LINGERING:
            events |= selectors.EVENT_READ
        if c in self.backlog:
            events |= selectors.EVENT_WRITE
        if events == c.events:
            return
        if not events:
            self.sel.unregister(c.sock)
        elif not c.events:
            self.sel.register(c.sock, events, c)
        else:
            self.sel.modify(c.sock, events, c)
        c.events = events

    # ---- queues ----

    def no_room(self, q, n):  # one frame always fits an empty outbox, however long
        return q.queued > 0 and q.queued + n > self.opt.max_pending

    def enqueue(self, c, frame, sender):
        if not c.outbox:
            c.since = time.monotonic()
        c.outbox.append([memoryview(frame), sender, len(frame)])
        c.queued += len(frame)
        self.dirty[c] = None

    def error(self, c, reason):
        if self.opt.error_frames and c.state in (OPEN, QUITTING):
            self.stats["errors"] += 1
            self.enqueue(c, b"\xff" + reason.encode() + b"\0", 0)

    def tell_departed(self, s, d):  # once per destination, and not into a full outbox
        if s.told_about == d.id or s.queued >= self.opt.max_pending:
            return
        s.told_about = d.id
        self.error(s, f"destination {d.id} {'too slow' if d.slow else 'disconnected'}, frames dropped")

    def block(self, s, q):  # s has a frame for q, whose outbox is full: stop reading s
        s.blocked_on = q
        q.waiters[s] = None
        self.watch(s)

    def release_waiters(self, q):  # q drained (or is gone): its senders route again
        for s in q.waiters:
            s.blocked_on = None
            self.ready[s] = None
        q.waiters = {}

    # ---- input ----

    def read(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.close(c)
        if not data:
            return self.close(c)
        if c.state == LINGERING:
            return  # discarded: the client was sent away
        c.inbox += data
        self.route_kept(c)

    def route_kept(self, c):  # every complete frame in the inbox, in order, until one must wait
        inbox, limit, start = c.inbox, self.opt.max_message, 0
        while c.state == OPEN and c.blocked_on is None and len(inbox) - start > 4:
            nul = inbox.find(0, start + 4, start + 5 + limit)
            if nul < 0:
                if len(inbox) - start - 4 > limit:
                    self.error(c, "message too long")
                    self.quit(c)
                break
            dest = int.from_bytes(inbox[start:start + 4], "big")
            d = self.conns.get(dest)
            q = d if d is not None else c
            need = nul + 1 - start - 4 if d is not None else ERROR_FRAME_MAX
            if (d is not None or self.opt.error_frames) and self.no_room(q, need):
                self.block(c, q)  # the frame stays in the inbox
                break
            body = bytes(inbox[start + 4:nul + 1])
            start = nul + 1
            if self.opt.work_us:
                work(body, self.opt.work_us)
                self.stats["worked"] += 1
            if d is not None:
                self.enqueue(d, body, c.id)
            else:
                self.stats["dropped"] += 1
                self.error(c, f"unknown destination {dest}")
        del inbox[:start]

    # ---- output ----

    def flush(self, c):  # write what is queued: one sendmsg for many frames
        self.dirty.pop(c, None)
        if c.state == QUITTING and not c.outbox:
            return self.linger(c)
        if c.state == CLOSED or not c.outbox:
            return
        try:
            n = c.sock.sendmsg([e[0] for e in itertools.islice(c.outbox, 512)])
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            return self.close(c)
        if n:
            c.since = time.monotonic()
        c.queued -= n
        while n:
            entry = c.outbox[0]
            if n < len(entry[0]):
                entry[0] = entry[0][n:]
                break
            n -= len(entry[0])
            c.outbox.popleft()
            if entry[1]:
                self.stats["frames"] += 1
                self.stats["bytes"] += entry[2]
        if c.outbox:
            self.backlog.add(c)
        else:
            self.backlog.discard(c)
        if 2 * c.queued < self.opt.max_pending:
            self.release_waiters(c)
        if c.state == QUITTING and not c.outbox:
            self.linger(c)
        self.watch(c)

    # ---- leaving ----

    def retire(self, c):  # out of the table: its ID stops resolving, it is read no more
        if c.state != OPEN:
            return
        self.conns.pop(c.id, None)
        c.state = QUITTING
        self.release_waiters(c)
        if c.blocked_on is not None:
            c.blocked_on.waiters.pop(c, None)
            c.blocked_on = None
        self.ready.pop(c, None)

    def quit(self, c):  # sent away: write its error frame, then linger and close
        self.retire(c)
        self.dirty[c] = None

    def linger(self, c):  # the client may still be sending: closing now would reset it
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return self.close(c)
        c.state, c.linger_until = LINGERING, time.monotonic() + LINGER_S
        self.watch(c)

    def close(self, c, slow=False):  # gone: frames still queued for it are dropped, senders told
        if c.state == CLOSED:
            return
        waiting = list(c.waiters) if slow else []  # a slow consumer's waiters hear why, too
        self.retire(c)
        c.slow = slow
        for s in waiting + [self.conns.get(e[1]) for e in c.outbox]:
            if s is not None and s is not c and s.state == OPEN:
                self.tell_departed(s, c)
        self.stats["dropped"] += sum(1 for e in c.outbox if e[1])
        c.outbox.clear()
        c.queued, c.state = 0, CLOSED
        self.release_waiters(c)
        self.backlog.discard(c)
        self.dirty.pop(c, None)
        self.all.discard(c)
        if c.events:
            self.sel.unregister(c.sock)
            c.events = 0
        c.sock.close()

    def evict_slow_consumers(self, now):
        timeout = self.opt.write_timeout
        for c in [c for c in self.backlog if timeout and now - c.since >= timeout]:
            self.stats["slow"] += 1
            self.log(f"client {c.id}: took no bytes for {timeout:.1f} s: disconnected as a slow consumer")
            self.close(c, slow=True)
        for c in [c for c in self.all if c.state == LINGERING and now >= c.linger_until]:
            self.close(c)

    # ---- the loop ----

    def accept(self):
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # EMFILE and friends: stop accepting for 100 ms, do not spin
            if e.errno in (errno.EMFILE, errno.ENFILE):
                self.sel.unregister(self.listener)
                self.accept_paused_until = time.monotonic() + 0.1
            return
        if len(self.all) >= self.opt.max_clients:  # told, and closed now: it holds no descriptor
            try:
                if self.opt.error_frames and sock.send(b"\xffserver full\0", socket.MSG_DONTWAIT) == 13:
                    self.stats["errors"] += 1
            except OSError:
                pass
            sock.close()
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Conn(sock, self.new_id())
        self.conns[c.id] = c
        self.all.add(c)
        self.stats["served"] += 1
        self.enqueue(c, c.id.to_bytes(4, "big"), 0)  # first in its outbox: the first bytes it gets
        self.watch(c)

    def end_of_turn(self):  # resume the senders whose destination drained; write every outbox
        while self.ready or self.dirty:
            if self.ready:
                s = next(iter(self.ready))
                del self.ready[s]
                self.route_kept(s)
                self.watch(s)
            else:
                self.flush(next(iter(self.dirty)))

    def run(self, wakeup):
        self.sel.register(wakeup, selectors.EVENT_READ, "signal")
        check = self.opt.write_timeout / 4 if self.opt.write_timeout else 0.5
        next_check = time.monotonic() + check
        stats_every = self.opt.stats_interval
        next_stats = time.monotonic() + stats_every if stats_every else float("inf")
        while not self.stopping:
            now = time.monotonic()
            deadline = min(next_check, next_stats)
            if self.accept_paused_until:
                deadline = min(deadline, self.accept_paused_until)
            for key, events in self.sel.select(max(0.0, deadline - now)):
                if key.data == "listener":
                    self.accept()
                elif key.data == "signal":
                    self.stopping = True
                else:
                    c = key.data
                    if events & selectors.EVENT_WRITE and c.state != CLOSED:
                        self.flush(c)
                    if events & selectors.EVENT_READ and c.state != CLOSED:
                        self.read(c)
            self.end_of_turn()
            now = time.monotonic()
            if now >= next_check:
                self.evict_slow_consumers(now)
                self.end_of_turn()  # the senders it released, the error frames it queued
                next_check = now + check
            if now >= next_stats:
                self.summary("stats: ")
                next_stats = now + stats_every
            if self.accept_paused_until and now >= self.accept_paused_until:
                self.accept_paused_until = 0.0
                self.sel.register(self.listener, selectors.EVENT_READ, "listener")


def work(body, us):
    """--work-us: about `us` microseconds of CPU per frame, a checksum over the payload repeated
    (it stands for validating, decrypting, compressing). The C routers calibrate a number of
    rounds at startup; Python's clock is cheap enough to check between rounds."""
    end, x, data = time.perf_counter_ns() + us * 1000, 0, body or b"\0"
    while time.perf_counter_ns() < end:
        x = zlib.crc32(data, x)
    return x


def work_us(text):
    n = int(text)
    if not 0 <= n <= 1000000:
        raise argparse.ArgumentTypeError("from 0 to 1000000")
    return n


def fit_descriptors(opt):  # raise the open-file limit, or lower --max-clients to fit it (as Redis)
    want = opt.max_clients + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < want:
        if soft <= RESERVED_FDS:
            sys.exit(f"example-router: the open-file limit is {soft}: it needs more than {RESERVED_FDS} (ulimit -n)")
        print(f"example-router: the open-file limit is {soft} and cannot be raised: --max-clients "
              f"lowered from {opt.max_clients} to {soft - RESERVED_FDS} (raise it with ulimit -n)",
              file=sys.stderr, flush=True)
        opt.max_clients = soft - RESERVED_FDS


def main():
    p = argparse.ArgumentParser(prog="example-router", description="the router, one thread")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--ids", choices=["sequential", "random"], default="sequential")
    p.add_argument("--max-message", type=int, default=65536)
    p.add_argument("--max-clients", type=int, default=10000)
    p.add_argument("--max-pending", type=int, default=1 << 20)
    p.add_argument("--no-error-frames", dest="error_frames", action="store_false")
    p.add_argument("--write-timeout", type=float, default=10.0, help="seconds; 0: never")
    p.add_argument("--work-us", type=work_us, default=0, metavar="N", help="CPU per frame")
    p.add_argument("--stats-interval", type=float, default=0.0, help="seconds; 0: only at exit")
    p.add_argument("--verbose", action="store_true", help="accepted, no effect")
    p.add_argument("--quiet", action="store_true", help="only the summary")
    p.add_argument("--version", action="version", version="example-router 1.0.0")
    opt = p.parse_args()
    fit_descriptors(opt)
    try:
        router = Router(opt)
    except OSError as e:
        sys.exit(f"example-router: bind {opt.host}:{opt.port}: {e.strerror}")
    # SIGINT and SIGTERM only wake the loop (a byte on a socket), which then stops between two
    # turns: never half-way through one. In place before "listening on", so a signal that comes
    # the moment the router announces itself still ends it cleanly.
    wakeup, wakeup_w = socket.socketpair()
    wakeup.setblocking(False)
    wakeup_w.setblocking(False)
    signal.set_wakeup_fd(wakeup_w.fileno(), warn_on_full_buffer=False)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    print("listening on %s:%d" % router.listener.getsockname()[:2], flush=True)
    router.run(wakeup)
    for c in list(router.all):
        router.close(c)
    router.summary()


if __name__ == "__main__":
    main()
