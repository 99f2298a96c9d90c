#!/usr/bin/env python3
"""How a cluster step's timed queries read the bucket: per timed run, the Parquet reads made
during it, the time with at least one in flight, and how many were in flight on average.

Usage: bench/s3_reads.py WORK/cluster/requests.log WORK/cluster/queries/timed-runs.log [QUERY]

Both logs are written by `fimlake-bench --steps cluster` (`bench/src/s3.rs`,
`bench/src/cluster.rs`). Requests of the nodes' background work (log reads, listings) during a
run are counted apart: only `.parquet` GETs are a query's reads.
"""
import collections
import sys


def requests(path):
    for line in open(path):
        fields = line.split()
        if len(fields) != 7:
            continue
        came, took = int(fields[0]), float(fields[1])
        yield came, came + took, fields[3], fields[4]


def in_flight(reads):
    """Time with at least one read in flight (ms), and the mean number in flight over it."""
    events = sorted([(start, 1) for start, _ in reads] + [(end, -1) for _, end in reads])
    busy, area, depth, last = 0.0, 0.0, 0, None
    for at, step in events:
        if depth > 0:
            busy += at - last
            area += depth * (at - last)
        depth += step
        last = at
    return busy, (area / busy if busy else 0.0)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    log = list(requests(sys.argv[1]))
    wanted = sys.argv[3] if len(sys.argv) > 3 else None
    by_query = collections.defaultdict(list)
    for line in open(sys.argv[2]):
        start, end, node, name, _ms = line.split()
        if wanted and name != wanted:
            continue
        start, end = int(start), int(end)
        reads = [(came, done) for came, done, method, path in log
                 if start <= came <= end and method == "GET" and path.endswith(".parquet")]
        busy, depth = in_flight(reads)
        by_query[(name, node)].append((end - start, len(reads), busy, depth))
    print(f"{'query':28s} {'node':8s} {'runs':>4s} {'ms':>7s} {'reads':>6s} {'busy ms':>8s} {'in flight':>9s}")
    for (name, node), runs in by_query.items():
        n = len(runs)
        mean = [sum(r[i] for r in runs) / n for i in range(4)]
        print(f"{name:28s} {node:8s} {n:4d} {mean[0]:7.0f} {mean[1]:6.0f} {mean[2]:8.0f} {mean[3]:9.1f}")


if __name__ == "__main__":
    main()
