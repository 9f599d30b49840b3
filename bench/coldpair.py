"""Cold starts of a few functions side by side: ``python -m bench.coldpair store_message assistant_tools``.

The same child and events as ``make bench``'s cold starts (``bench.coldstart``), but the functions' fresh
processes run in turns (run i of each, then run i+1), so a busy machine slows them alike; medians of
import, first request (connection, statement, SQS send), both, and the whole process's wall time, and
each function's third-party import floor."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench import FUNCTIONS
from bench.coldstart import Floor, _floor, _median, _run_child, tops
from bench.env import STATE


def main(argv: list[str] | None = None) -> int:
    """Cold-start the named functions (``bench.operations.COLD_STARTS`` entries) as ``make bench`` does
    (fresh processes, the same child, its own PostgreSQL and moto), but interleaved: run i of every
    function, then run i+1, so a busy machine slows them alike. Prints medians; BENCHMARKS.md is not
    touched. ``python -m bench.coldpair store_message assistant_tools --runs 15``."""
    import argparse
    import time

    from bench.env import function_env, load, quiet_stdout, started, use_settings
    from bench.operations import COLD_STARTS, fixtures_of
    from testkit.env import migrated_database

    known = {cs.function: cs for cs in COLD_STARTS if cs.available}
    parser = argparse.ArgumentParser(prog="python -m bench.coldpair", description=main.__doc__)
    parser.add_argument("functions", nargs="+", choices=sorted(known))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)

    run_id = time.strftime("%H%M%S")
    load_start = load()
    samples: dict[str, list[tuple[dict[str, Any], float]]] = {name: [] for name in args.functions}
    floors: dict[str, Floor] = {}
    try:
        with started() as (pg, moto):
            db = migrated_database(pg, "hibachi_cold")
            use_settings(db, moto.resources.settings())
            fixtures: dict[str, dict[str, Any]] = {}
            with quiet_stdout():
                for name in args.functions:
                    for key in known[name].setups:
                        fixtures.setdefault(key, fixtures_of(key, 1, run_id))
            env = function_env(db, moto)
            STATE.mkdir(parents=True, exist_ok=True)
            for i in range(args.runs + 1):  # run 0 only warms the page cache
                for name in args.functions:
                    event_file = STATE / f"cold-{name}.json"
                    event = known[name].event(fixtures, f"{run_id}-{name.replace('_', '-')}-{i}")
                    event_file.write_text(json.dumps(event), encoding="utf-8")
                    child, wall = _run_child(FUNCTIONS / name, env, event_file)
                    event_file.unlink(missing_ok=True)
                    if i:
                        samples[name].append((child, wall))
            for name in args.functions:
                floors[name] = _floor(
                    tops(samples[name][-1][0]["third_party_import"]), FUNCTIONS / name, env, args.runs
                )
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"cold start failed: {str(exc)[-600:]}", file=sys.stderr)
        return 1
    print(f"Cold starts, medians of {args.runs} fresh processes each, interleaved (load {load_start} -> {load()}):")
    print("| function | first request | result | import ms | first request ms | cold start ms | wall ms | floor ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.functions:
        rows = samples[name]
        print(
            f"| {name} | {known[name].first_request} | {rows[-1][0]['outcome']} "
            f"| {_median([c['import_ms'] for c, _ in rows]):.0f} | {_median([c['first_ms'] for c, _ in rows]):.0f} "
            f"| {_median([c['total_ms'] for c, _ in rows]):.0f} | {_median([w for _, w in rows]):.0f} "
            f"| {floors[name].inside_ms:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
