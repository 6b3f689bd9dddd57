"""The line protocol between bench/bench.py and one contestant process (no nnabla, no torch here).

The coordinator writes `run N` (time N training iterations, reply {"times": [seconds...]}) or
`quit` (reply {"maxrss_mb": ..., "cpu_s": ...}); the contestant blocks on stdin in between, so
only one contestant computes at a time. Replies are single JSON lines on stdout, after a line
`READY {...}` (versions) once the contestant has built its networks.
"""
import json
import resource
import sys
import time


def serve(step, make_batch, info):
    """`step(batch)` runs one training iteration; `make_batch(i)` draws its (untimed) minibatch."""
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the libraries print must not break the protocol
    out.write("READY " + json.dumps(info) + "\n")
    out.flush()
    i = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            times, cpu = [], []
            for _ in range(int(cmd[1])):
                batch = make_batch(i)
                t0, c0 = time.perf_counter(), time.process_time()
                step(batch)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)   # all of the process' threads; less disturbed by load
                i += 1
            reply = {"times": times, "cpu": cpu}
        elif cmd[0] == "quit":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            reply = {"maxrss_mb": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime}
        else:
            reply = {"error": f"unknown command {cmd[0]!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if cmd[0] == "quit":
            return
