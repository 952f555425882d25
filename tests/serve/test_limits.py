"""The rate limiter's sliding window, worked by hand with a fake clock."""

from __future__ import annotations

from rag.serve.limits import RateLimiter


def test_a_sliding_window_per_client():
    now = [0.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    now[0] = 10.0
    assert limiter.hit("a") == 50.0  # the first request leaves the window at t=60
    assert limiter.hit("b") == 0  # another client has its own allowance
    now[0] = 60.0  # both requests made at t=0 have left the window; the refused one never counted
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    assert limiter.hit("a") == 60.0
    assert RateLimiter.parse("") is None
    parsed = RateLimiter.parse("30/minute")
    assert parsed is not None and (parsed.count, parsed.period_s) == (30, 60.0)
