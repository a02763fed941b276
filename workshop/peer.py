#!/usr/bin/env python3
"""peer.py - a client of the router protocol to drive by hand, one per terminal.

    python3 workshop/peer.py PORT            the port a router printed ("listening on 127.0.0.1:PORT")
    python3 workshop/peer.py HOST:PORT       or the address, as printed

Prints the ID the router gives it, then reads commands from stdin:
    DEST TEXT     send TEXT to the client with ID DEST (e.g. "2 hello")
    DEST          send an empty frame to DEST
Every frame that arrives is printed as it comes; an error frame shows as "error: REASON".
It never sends anything you did not type, so it can play a client that waits quietly.
"""
import os, selectors, socket, struct, sys

def main():
    if len(sys.argv) < 2:
        sys.exit("usage: peer.py PORT | HOST:PORT  (the port the router printed: listening on HOST:PORT)")
    host, _, port = sys.argv[1].rpartition(":")
    host = host or (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1")
    if not port.isdigit():
        sys.exit(f"peer.py: '{sys.argv[1]}' is not a port: give the one the router printed")
    try:
        sock = socket.create_connection((host, int(port)))
    except OSError as e:
        sys.exit(f"peer.py: cannot connect to {host}:{port}: {e.strerror} (is the router running? is it that port?)")
    first = sock.recv(4, socket.MSG_WAITALL)
    if len(first) < 4:
        sys.exit("the router closed the connection before sending an ID")
    if first[0] == 0xFF:  # "server full" arrives instead of an ID
        sys.exit("refused: " + (first + sock.recv(256)).split(b"\0")[0][1:].decode(errors="replace"))
    print(f"you are ID {struct.unpack('>I', first)[0]}", flush=True)

    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    pending, typed = b"", b""
    while True:
        for key, _ in sel.select():
            if key.fileobj is sys.stdin:  # os.read, not readline: no lines hidden in a buffer
                data = os.read(sys.stdin.fileno(), 4096)
                if not data:
                    return
                typed += data
                *lines, typed = typed.split(b"\n")
                for line in lines:
                    dest, _, text = line.partition(b" ")
                    if dest.isdigit():
                        sock.sendall(struct.pack(">I", int(dest)) + text + b"\0")
                    else:
                        print("type: DEST TEXT", flush=True)
                continue
            data = sock.recv(65536)
            if not data:
                print("the router closed the connection", flush=True)
                return
            pending += data
            *frames, pending = pending.split(b"\0")
            for f in frames:
                if f[:1] == b"\xff":
                    print("error: " + f[1:].decode(errors="replace"), flush=True)
                else:
                    print("<- " + f.decode(errors="replace"), flush=True)

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
