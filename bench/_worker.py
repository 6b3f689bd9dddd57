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


def serve(step, make_batch, info, comm=None):
    """`step(batch)` runs one training iteration; `make_batch(i)` draws its (untimed) minibatch.
    Under mpiexec (`comm`: mpi4py's world), rank 0 reads the commands and passes each to the other
    ranks, which step along; rank 0 replies with its own times, the peak memory the largest rank's."""
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the libraries print must not break the protocol
    lead = comm is None or comm.rank == 0
    if lead:
        out.write("READY " + json.dumps(info) + "\n")
        out.flush()
    i = 0
    while True:
        line = sys.stdin.readline() or None if lead else None
        if comm is not None:
            # MPI busy-polls inside a collective: the other ranks would burn a core while the
            # coordinator times another contestant. A non-blocking barrier tested with short
            # sleeps waits without spinning.
            req = comm.Ibarrier()
            while not req.Test():
                time.sleep(0.002)
            line = comm.bcast(line, root=0)
        if line is None:
            return
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
            if comm is not None:   # the CPU time of every rank
                cpu = [comm.allreduce(c) for c in cpu]
            reply = {"times": times, "cpu": cpu}
        elif cmd[0] == "quit":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            reply = {"maxrss_mb": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime}
            if comm is not None:
                from mpi4py import MPI
                reply["maxrss_mb"] = comm.allreduce(reply["maxrss_mb"], op=MPI.MAX)
        else:
            reply = {"error": f"unknown command {cmd[0]!r}"}
        if lead:
            out.write(json.dumps(reply) + "\n")
            out.flush()
        if cmd[0] == "quit":
            return
