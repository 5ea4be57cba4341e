"""`invoke bench`'s command line for bench/api_bench.py, parsed back by the bench's own parser."""

from __future__ import annotations

from bench import api_bench
from devtools.tasks import bench_argv


def parsed(argv: list[str]):
    assert argv[1:3] == ["-m", "bench.api_bench"]
    return api_bench.parse_args(argv[3:])


def test_the_defaults_are_the_benchs_own():
    assert vars(parsed(bench_argv())) == vars(api_bench.parse_args([]))


def test_passes_and_the_standby_mode_reach_the_bench():
    args = parsed(bench_argv(passes=4, scenario="purchase_ingest,mixed", concurrency="64", standby="sync"))
    assert (args.passes, args.scenario, args.concurrency, args.standby) == (4, "purchase_ingest,mixed", "64", "sync")


def test_a_soak_on_the_large_data_reaches_the_bench_as_one():
    args = parsed(bench_argv(soak=True, minutes=2.0, data_size="large"))
    assert (args.soak, args.minutes, args.data_size, args.passes) == (True, 2.0, "large", 1)


def test_alternating_sizes_reach_the_bench():
    args = parsed(bench_argv(data_size="both", alternate=True, passes=3))
    assert (args.data_size, args.alternate, args.passes) == ("both", True, 3)
