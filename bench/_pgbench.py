"""Shared by the benchmarks: PostgreSQL's own ceiling on this machine, pgbench TPC-B on
the same server in the same run, so a figure is read as a ratio to it."""

from __future__ import annotations

import os
import re
import subprocess

TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def pgbench_tps(
    *,
    clients: int = 8,
    jobs: int = 2,
    seconds: int = 15,
    scale: int = 10,
    host: str = "127.0.0.1",
    user: str = "postgres",
) -> float:
    """TPC-B tps (``pgbench -c clients -j jobs -T seconds``, scale ``scale``) on a
    scratch database created for the run and dropped after it."""
    connect = ["-h", host, "-U", user]
    db = f"bench_pgbench_{os.getpid()}"
    subprocess.run(["dropdb", *connect, "--if-exists", db], capture_output=True)
    subprocess.run(["createdb", *connect, db], check=True, capture_output=True)
    try:
        subprocess.run(["pgbench", *connect, "-i", "-q", "-s", str(scale), db], check=True, capture_output=True)
        result = subprocess.run(
            ["pgbench", *connect, "-c", str(clients), "-j", str(jobs), "-T", str(seconds), db],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        subprocess.run(["dropdb", *connect, "--if-exists", db], capture_output=True)
    match = TPS.search(result.stdout)
    if match is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{result.stdout}")
    return float(match.group(1))
