#!/usr/bin/env python3
"""Rank 1 joining while a client holds every slot of rank 0's rendezvous store with idle connections.

Starts rank 0 of a 2-rank k-means job, opens 4200 idle TCP connections to its store (4096 slots),
waits WAIT seconds, then starts rank 1 and prints both exit statuses and how long rank 1 took.
Since 2026-12-04 the store gives an idle anonymous connection's slot (10 s without a request) to a
newcomer and the ranks retry until then, so both exit 0; before, rank 1 failed at once with
"the rendezvous store ... stopped answering".

usage: store_idle_connections.py MLFORGE WAIT_S PORT   (run in an empty directory; writes d.pbr, m0/, m1/, log0, log1)
"""
import os
import resource
import socket
import subprocess
import sys
import time

mlforge, wait_s, port = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
subprocess.run([mlforge, "data", "synth", "blobs", "d.pbr", "--rows", "20000", "--cols", "10", "--no-labels",
                "--no-truth"], check=True, stdout=subprocess.DEVNULL)


def rank(r):
    env = dict(os.environ, RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return subprocess.Popen([mlforge, "train", "kmeans", "--train", "d.pbr", "--model-dir", f"m{r}", "--hp", "k=4",
                             "--hp", "feature_dim=10", "--hp", "epochs=2"],
                            env=env, stdout=open(f"log{r}", "w"), stderr=subprocess.STDOUT)


p0 = rank(0)
time.sleep(1.0)
socks = []
for i in range(4200):
    try:
        socks.append(socket.create_connection(("127.0.0.1", port)))
    except OSError as e:
        print("connection", i, "failed:", e)
        break
print("opened", len(socks), "idle connections; waiting", wait_s, "s")
time.sleep(wait_s)
t = time.time()
p1 = rank(1)
print("rank 1 exit", p1.wait(), "rank 0 exit", p0.wait(), "after %.2f s" % (time.time() - t))
