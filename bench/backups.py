#!/usr/bin/env python3
"""Benchmark: the backup pipeline against a bare ``pg_dump``, and restores with -j 2 and -j 1.

    python bench/backups.py [--scale 45] [--text-mb 420] [--rounds 3]

What runs, on loopback on this machine: a PostgreSQL cluster (Debian's, started like the tests
start it, ``tests/backup_harness.Postgres``), an S3 API (moto's server), and a generated
database of at least 1 GB (``pg_database_size``): pgbench's tables at ``--scale`` plus a table
of paper-like text rows (``--text-mb`` of random words: compressible like real prose, unlike
pgbench's filler, which compresses 56 times and would make any dump trivial).

Measured, interleaved, ``--rounds`` rounds, medians:

* **bare**: ``pg_dump -Fc -d DB > /dev/null``: the floor any custom-format backup pays;
* **pipeline**: ``python -m backup backup postgres --database DB --at T`` as the CronJob runs it
  (a new ``--at`` each round): a REPEATABLE READ snapshot shared with pg_dump, the exact row
  counts of every table in that snapshot, the dump streamed through SHA-256 into a multipart
  upload, the globals file and the manifest;
* **restore -j 1 / -j 2**: ``pg_restore -j N --no-owner`` of the newest dump (downloaded and
  verified once) into a new empty database, the database dropped after each run.

Printed: database and dump size, times, throughput (database bytes per second), the ratio
bare / pipeline time (target >= 0.8: the pipeline keeps 80 % of pg_dump's own throughput),
the restore speed-up of -j 2 over -j 1, and the implied restore time per GB of database.
Exits 1 when the target is missed, 2 when the bench cannot run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PROGRAM = ROOT / "components" / "backups" / "program"
if str(PROGRAM) not in sys.path:
    sys.path.insert(0, str(PROGRAM))

from backup.store import Store  # noqa: E402

from tests.backup_harness import PG_ROLE, Moto, Postgres, run_program, shared_folder  # noqa: E402

TARGET = 0.8
DB = "bench"
GB = 1024**3

TEXT_SQL = """
CREATE TABLE papers (id bigserial PRIMARY KEY, title text, abstract text, body text);
INSERT INTO papers (title, abstract, body)
SELECT 'Paper ' || g,
       (SELECT string_agg(w, ' ')
        FROM (SELECT substr(md5(random()::text), 1, 3 + (random() * 6)::int) w
              FROM generate_series(1, 40)) words),
       (SELECT string_agg(w, ' ')
        FROM (SELECT substr(md5(random()::text), 1, 3 + (random() * 6)::int) w
              FROM generate_series(1, 300 + (g % 7) * 0)) words)
FROM generate_series(1, {rows}) g;
"""


def timed(
    command: list[str], env: dict[str, str] | None = None, stdout: int | None = None
) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=stdout, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command[:4])} failed: {result.stderr.decode()[-800:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=int, default=45, help="pgbench scale (100,000 accounts each)"
    )
    parser.add_argument("--text-mb", type=int, default=420, help="approximate MB of text rows")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    postgres = Postgres(shared_folder("bench-backup-pg-")).start()
    moto = Moto().start()
    try:
        return measure(postgres, moto, args)
    finally:
        moto.stop()
        postgres.stop()


def measure(postgres: Postgres, moto: Moto, args: argparse.Namespace) -> int:
    env_pg = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(postgres.port), "PGUSER": PG_ROLE,
              "PGPASSWORD": "correct-horse-battery", "PGDATABASE": DB}  # fmt: skip
    size = generate(postgres, args, env_pg)
    if size < 10**9:
        print("bench: the database is under 1 GB: raise --scale or --text-mb", file=sys.stderr)
        return 2

    bucket = moto.bucket("bench-backups")
    credentials = postgres.credentials(Path(shared_folder("bench-backup-cred-")))
    env = {**moto.environment(), "BACKUP_BUCKET": bucket, "DATABASE_HOST": "127.0.0.1",
           "DATABASE_PORT": str(postgres.port), "DATABASE_SSLMODE": "disable",
           "DATABASE_CREDENTIALS_DIR": str(credentials)}  # fmt: skip
    dumps = time_dumps(env_pg, env, args.rounds)
    if dumps is None:
        return 2
    bare, pipeline = dumps

    store = Store(bucket, moto.client("s3"))
    newest = max(k for k, _ in store.keys(f"postgresql/{DB}/") if k.endswith(".manifest.json"))
    manifest = store.get_json(newest)
    if manifest is None:
        raise SystemExit(f"bench: the manifest {newest} vanished between listing and reading it")
    folder = shared_folder("bench-backup-dump-")
    dump = folder / "bench.dump"
    store.verify(manifest["key"], size=manifest["size"], sha256=manifest["sha256"], into=dump)
    restores = time_restores(postgres, env_pg, dump, args.rounds)
    dump.unlink()
    return report(size, manifest, bare, pipeline, restores)


def generate(postgres: Postgres, args: argparse.Namespace, env_pg: dict[str, str]) -> int:
    """Create and fill the database; its size in bytes."""
    postgres.admin(f"CREATE DATABASE {DB} OWNER {PG_ROLE}")
    started = time.perf_counter()
    timed(["pgbench", "-i", "-s", str(args.scale), "-q", "-I", "dtGvp"], env=env_pg)
    rows = args.text_mb * 1024 * 1024 // 2200  # about 2.2 kB per row on disk
    postgres.psql(TEXT_SQL.format(rows=rows), DB)
    postgres.psql("VACUUM ANALYZE", DB)
    size = int(postgres.psql(f"SELECT pg_database_size('{DB}')", DB))
    print(
        f"database: {size / GB:.2f} GiB ({size:,} bytes), "
        f"generated in {time.perf_counter() - started:.0f} s"
    )
    return size


def time_dumps(
    env_pg: dict[str, str], env: dict[str, str], rounds: int
) -> tuple[list[float], list[float]] | None:
    """Bare pg_dump and pipeline times, interleaved; None when the pipeline failed."""
    bare: list[float] = []
    pipeline: list[float] = []
    timed(["pg_dump", "-Fc", "-d", DB], env=env_pg, stdout=subprocess.DEVNULL)  # warm the cache
    for number in range(rounds):
        runs = [("bare", number), ("pipeline", number)]
        for name, _ in runs if number % 2 == 0 else reversed(runs):
            if name == "bare":
                bare.append(
                    timed(["pg_dump", "-Fc", "-d", DB], env=env_pg, stdout=subprocess.DEVNULL)
                )
            else:
                began = time.perf_counter()
                result = run_program(
                    "backup",
                    "postgres",
                    "--database",
                    DB,
                    "--at",
                    f"2026-01-01T{number:02d}:00Z",
                    env=env,
                    timeout=3600,
                )
                if result.returncode != 0:
                    print(f"bench: the pipeline failed: {result.stderr[-800:]}", file=sys.stderr)
                    return None
                pipeline.append(time.perf_counter() - began)
        print(f"round {number + 1}/{rounds}: bare {bare[-1]:.1f} s, pipeline {pipeline[-1]:.1f} s")
    return bare, pipeline


def time_restores(
    postgres: Postgres, env_pg: dict[str, str], dump: Path, rounds: int
) -> dict[int, list[float]]:
    """pg_restore -j 1 and -j 2 times, interleaved, each into a new database dropped after."""
    restores: dict[int, list[float]] = {1: [], 2: []}
    for number in range(max(2, rounds - 1)):
        for jobs in (1, 2) if number % 2 == 0 else (2, 1):
            target = f"restored_{jobs}"
            postgres.admin(f"DROP DATABASE IF EXISTS {target}")
            postgres.admin(f"CREATE DATABASE {target} OWNER {PG_ROLE}")
            restores[jobs].append(
                timed(
                    ["pg_restore", "-j", str(jobs), "--no-owner", "-d", target, str(dump)],
                    env=env_pg,
                )
            )
            postgres.admin(f"DROP DATABASE {target}")
        print(
            f"restore round {number + 1}: "
            f"-j 1 {restores[1][-1]:.1f} s, -j 2 {restores[2][-1]:.1f} s"
        )
    return restores


def report(
    size: int,
    manifest: dict[str, Any],
    bare: list[float],
    pipeline: list[float],
    restores: dict[int, list[float]],
) -> int:
    """Print the medians; 1 when the pipeline misses the target, else 0."""
    bare_s, pipe_s = statistics.median(bare), statistics.median(pipeline)
    j1, j2 = statistics.median(restores[1]), statistics.median(restores[2])
    ratio = bare_s / pipe_s
    print()
    print(
        f"dump (custom format): {manifest['size'] / 2**20:.0f} MiB, "
        f"{manifest['size'] / size:.2f} of the database"
    )
    print(f"{'':24} {'seconds':>8} {'MB/s of database':>17}")
    print(f"{'bare pg_dump -Fc':24} {bare_s:8.1f} {size / bare_s / 1e6:17.1f}")
    print(f"{'backup pipeline':24} {pipe_s:8.1f} {size / pipe_s / 1e6:17.1f}")
    print(f"pipeline throughput / bare pg_dump: {ratio:.3f}  (target >= {TARGET})")
    print(f"restore -j 1: {j1:.1f} s   -j 2: {j2:.1f} s   speed-up {j1 / j2:.2f}x")
    print(
        "implied restore time per GB of database: "
        f"-j 1 {j1 / (size / GB):.1f} s, -j 2 {j2 / (size / GB):.1f} s"
    )
    if ratio < TARGET:
        print("TARGET MISSED")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
