"""bench/start_to_ready.py's verdict: the median and the max of the starts, against the 1.5 s bound."""

from bench.start_to_ready import summary


def test_the_slowest_start_decides_the_verdict():
    within = summary([(0.41, 0.30), (0.38, 0.28), (0.52, 0.33)])
    assert "median 0.41 s, max 0.52 s (bound 1.5 s: met)" in within
    assert "each: 0.41, 0.38, 0.52; CPU until ready: median 0.30 s" in within
    assert "(bound 1.5 s: NOT met)" in summary([(0.40, 0.3), (0.39, 0.3), (1.51, 0.3)])
