"""The HTTP limits are flags; a value that would disarm one is refused at start-up with one line."""

from __future__ import annotations

import pytest

from tests.serving.support import run_to_failure

BAD_LIMITS = [
    ("--header-timeout", "0", "must be a finite number > 0"),
    ("--body-timeout", "-1", "must be a finite number > 0"),
    ("--header-timeout", "inf", "must be a finite number > 0"),
    ("--max-header-bytes", "0", "must be at least 1"),
    ("--max-pipelined", "0", "must be at least 1"),
    ("--max-connections", "many", "invalid --max-connections 'many'"),
]


@pytest.mark.parametrize(("flag", "value", "reason"), BAD_LIMITS)
def test_a_limit_that_would_disarm_the_server_is_refused(flag: str, value: str, reason: str) -> None:
    # When the server is started with the bad value,
    result = run_to_failure(
        "--model-uri", "/nonexistent.skops", "--model-name", "m", "--model-version", "1", flag, value
    )
    # then it exits 1 with one line on stderr naming the flag, before it loads anything.
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"invalid {flag} {value!r}" in result.stderr
    assert reason in result.stderr
