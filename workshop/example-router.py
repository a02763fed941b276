#!/usr/bin/env python3
"""example-router.py - the router protocol in one Python thread, a starting point for exercise 5.

Pattern: the reactor. One loop (selectors) owns every connection and the ID table, so no state
is shared and nothing is locked. Each connection has an inbox (bytes not yet parsed) and an
outbox (frames not yet written). Backpressure by not reading: a sender whose destination has
more than --max-pending bytes queued is no longer read until that outbox drains, so a slow
consumer stalls only the clients writing to it. Its flaw: one core, whatever the machine has.

    python3 workshop/example-router.py --port 0      # prints "listening on 127.0.0.1:PORT"
    make check ROUTER='python3 workshop/example-router.py'
"""
import argparse, collections, errno, random, selectors, signal, socket, sys

class Conn:
    def __init__(self, sock, cid):
        self.sock, self.id = sock, cid
        self.inbox = bytearray()
        self.outbox = collections.deque()  # whole frames, oldest first; the first may be half sent
        self.queued = 0                    # bytes in outbox
        self.paused = set()                # senders not read until this outbox drains
        self.waiting_on = set()            # destinations whose outboxes this sender waits for
        self.closing = False               # told "message too long": close once flushed

class Router:
    def __init__(self, opt):
        self.opt, self.sel, self.conns, self.used = opt, selectors.DefaultSelector(), {}, set()
        self.next_id, self.stats = 1, collections.Counter()
        self.listener = socket.create_server((opt.host, opt.port))
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ)

    def new_id(self):
        if self.opt.ids == "sequential":
            self.next_id += 1
            return self.next_id - 1
        while True:  # random: unique and never 0, remembering every ID handed out
            cid = random.getrandbits(32)
            if cid and cid not in self.used:
                self.used.add(cid)
                return cid

    def watch(self, c):  # read unless paused or closing; write while the outbox is not empty
        events = 0 if c.closing or c.waiting_on else selectors.EVENT_READ
        events |= selectors.EVENT_WRITE if c.queued else 0
        registered = c.sock in self.sel.get_map()
        if events and registered:
            self.sel.modify(c.sock, events, c)
        elif events:
            self.sel.register(c.sock, events, c)
        elif registered:
            self.sel.unregister(c.sock)

    def queue(self, c, frame):
        c.outbox.append(memoryview(frame))
        c.queued += len(frame)
        self.watch(c)

    def error(self, c, reason):
        if self.opt.error_frames:
            self.stats["errors"] += 1
            self.queue(c, b"\xff" + reason.encode() + b"\0")

    def accept(self):
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as e:  # EMFILE and friends: stop accepting for a moment, do not spin
            if e.errno in (errno.EMFILE, errno.ENFILE):
                self.sel.unregister(self.listener)
                self.retry_accept = True
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Conn(sock, 0)
        if len(self.conns) >= self.opt.max_clients:
            self.error(c, "server full")
            return self.quit(c)
        c.id = self.new_id()
        self.conns[c.id] = c
        self.stats["served"] += 1
        self.queue(c, c.id.to_bytes(4, "big"))

    def read(self, c):
        if c.closing:
            return
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.drop(c)
        if not data:
            return self.drop(c)
        c.inbox += data
        limit, start = self.opt.max_message, 0
        while len(c.inbox) - start > 4:  # every complete frame before the next read
            nul = c.inbox.find(0, start + 4, start + 5 + limit)
            if nul < 0:
                if len(c.inbox) - start - 4 > limit:
                    self.error(c, "message too long")
                    return self.quit(c)
                break
            dest = int.from_bytes(c.inbox[start:start + 4], "big")
            body = bytes(c.inbox[start + 4:nul + 1])
            start = nul + 1
            d = self.conns.get(dest)
            if d is None:
                self.error(c, f"unknown destination {dest}")
                continue
            self.queue(d, body)
            self.stats["frames"] += 1
            self.stats["bytes"] += len(body)
            if d.queued > self.opt.max_pending:
                d.paused.add(c)
                c.waiting_on.add(d)
                self.watch(c)
        del c.inbox[:start]

    def write(self, c):
        while c.outbox:
            try:
                n = c.sock.send(c.outbox[0])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return self.drop(c)
            c.queued -= n
            c.outbox[0] = c.outbox[0][n:]
            if len(c.outbox[0]):
                break
            c.outbox.popleft()
        if not c.outbox and c.closing:
            return self.drop(c)
        if c.queued <= self.opt.max_pending:
            self.release(c)
        self.watch(c)

    def release(self, d):  # d's outbox drained (or d is gone): read its paused senders again
        paused, d.paused = d.paused, set()
        for s in paused:
            s.waiting_on.discard(d)
            if s.id in self.conns:
                self.watch(s)

    def quit(self, c):  # stop reading c, and close it once its outbox (an error frame) is out
        c.closing = True
        self.conns.pop(c.id, None)
        if c.queued:
            self.watch(c)
        else:
            self.drop(c)

    def drop(self, c):  # retire the ID for good; frames still queued for it are lost
        self.stats["dropped"] += len(c.outbox) if c.id else 0
        self.conns.pop(c.id, None)
        if c.sock in self.sel.get_map():
            self.sel.unregister(c.sock)
        c.sock.close()
        for d in c.waiting_on:
            d.paused.discard(c)
        self.release(c)

    def run(self):
        self.retry_accept = False
        while True:
            for key, events in self.sel.select(0.1 if self.retry_accept else None):
                c = key.data
                if c is None:
                    self.accept()
                    continue
                if events & selectors.EVENT_WRITE and c.sock.fileno() >= 0:
                    self.write(c)
                if events & selectors.EVENT_READ and c.sock.fileno() >= 0:
                    self.read(c)
            if self.retry_accept and self.listener not in self.sel.get_map():
                self.sel.register(self.listener, selectors.EVENT_READ)
                self.retry_accept = False

class Shutdown(Exception):
    pass

def stop(signum, frame):
    raise Shutdown()

def main():
    p = argparse.ArgumentParser(prog="example-router", description="the router, one thread")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--ids", choices=["sequential", "random"], default="sequential")
    p.add_argument("--max-message", type=int, default=65536)
    p.add_argument("--max-clients", type=int, default=10000)
    p.add_argument("--max-pending", type=int, default=1 << 20)
    p.add_argument("--no-error-frames", dest="error_frames", action="store_false")
    p.add_argument("--verbose", "--quiet", action="store_true", help="accepted, no effect")
    p.add_argument("--version", action="version", version="example-router 1.0.0")
    opt = p.parse_args()
    try:
        router = Router(opt)
    except OSError as e:
        sys.exit(f"bind {opt.host}:{opt.port}: {e.strerror}")
    print("listening on %s:%d" % router.listener.getsockname()[:2], flush=True)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        router.run()
    except Shutdown:
        pass
    for c in list(router.conns.values()):
        router.drop(c)
    s = router.stats
    print(f"example-router: served {s['served']} clients, forwarded {s['frames']} frames "
          f"({s['bytes']} bytes), dropped {s['dropped']} frames, sent {s['errors']} error frames",
          file=sys.stderr)

if __name__ == "__main__":
    main()
