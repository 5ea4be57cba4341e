"""The data-scale bench's options (datascale/options.py) and the generator's step rendering."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

import datascale
from datascale import options


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=1)
    options.add_options(parser)
    args = parser.parse_args(list(argv))
    options.check(args, parser)
    return args


def test_defaults_measure_the_small_data_without_soak_or_plans():
    args = parse()
    assert (args.data_size, args.soak, args.minutes, args.plans) == ("small", False, 10.0, False)
    assert options.sizes(args) == ["small"]


def test_both_sizes_run_small_first_then_large():
    assert options.sizes(parse("--data-size", "both")) == ["small", "large"]
    assert options.sizes(parse("--data-size", "large")) == ["large"]


def test_without_alternate_each_size_runs_all_its_passes_in_one_round():
    assert options.rounds(parse("--data-size", "both", "--passes", "3")) == [(0, "small", True), (0, "large", True)]


def test_alternate_takes_turns_and_the_backlog_ends_the_last_round():
    args = parse("--data-size", "both", "--passes", "3", "--alternate")
    assert options.rounds(args) == [
        (1, "small", False),
        (1, "large", False),
        (2, "small", False),
        (2, "large", False),
        (3, "small", True),
        (3, "large", True),
    ]


def test_a_short_soak_at_large_size():
    args = parse("--soak", "--minutes", "0.5", "--data-size", "large")
    assert (args.soak, args.minutes, args.data_size) == (True, 0.5, "large")


@pytest.mark.parametrize(
    "argv",
    [
        ("--data-size", "huge"),
        ("--minutes", "0"),
        ("--minutes", "-1"),
        ("--minutes", "61"),
        ("--minutes", "ten"),
        ("--soak", "--data-size", "both"),
        ("--soak", "--passes", "3"),
        ("--alternate",),
        ("--alternate", "--data-size", "large"),
    ],
)
def test_meaningless_options_are_refused_with_usage_status(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_steps_render_every_parameter_as_a_literal():
    scale = datascale.Scale(users=40, purchases=1_000, heavy_purchases=100, merchants=5, pending_tail=10)
    rendered = datascale.steps(scale, datetime(2026, 12, 6, 12, tzinfo=UTC))
    names = [name for name, _ in rendered]
    assert names[:3] == ["session", "plan", "users"] and names[-1] == "done"
    text = "\n".join(sql for _, sql in rendered)
    for parameter in ("anchor", "users", "purchases", "heavy_every", "merchants", "span_seconds", "pending_tail"):
        assert f":{parameter}" not in text
    assert "'2026-12-06T12:00:00+00:00'::timestamptz" in text
    assert "s.i % 10 = 0" in text  # 1,000 purchases, 100 of them the heavy user's: every 10th slot


@pytest.mark.parametrize(
    "scale",
    [
        datascale.Scale(users=10, purchases=1_000, heavy_purchases=100, merchants=5, pending_tail=10),
        datascale.Scale(users=40, purchases=1_001, heavy_purchases=100, merchants=5, pending_tail=10),
        datascale.Scale(users=40, purchases=1_000, heavy_purchases=100, merchants=5, pending_tail=2_000),
    ],
)
def test_impossible_scales_are_refused(scale):
    with pytest.raises(ValueError):
        datascale.steps(scale, datetime.now(UTC))


def test_the_large_scale_is_the_issues():
    assert datascale.LARGE.users == 100_000
    assert datascale.LARGE.purchases == 10_000_000
    assert datascale.LARGE.heavy_purchases == 100_000
    datascale.LARGE.check()
