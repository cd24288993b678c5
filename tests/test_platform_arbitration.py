# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""SharedSetting rules as the domain protocols use them: an idle value applies once the
last agent leaves, watchers see the requests that made the value, announcements (logged
False) leave no host-change line in the log."""

from __future__ import annotations

import logging

import pytest

from vhost_scmi.devices.fake_reset import FakeReset
from vhost_scmi.platform.arbitration import ArbitrationDenied, Rule, SharedSetting
from vhost_scmi.platform.host import run_inline


def setting(rule: Rule, value: object, applied: list, **kwargs) -> SharedSetting:
    return SharedSetting(FakeReset("r"), "s", rule, value, applied.append, **kwargs)


def test_idle_value_once_nobody_asks() -> None:
    applied: list = []
    enabled = setting(Rule.ANY, False, applied, idle=False)
    run_inline(enabled.request(1, True))
    run_inline(enabled.request(2, True))
    run_inline(enabled.release(1))
    assert enabled.value is True and applied == [True]
    run_inline(enabled.release(2))
    assert enabled.value is False and applied == [True, False]
    kept = setting(Rule.ANY, False, [])  # no idle value: the last value stays
    run_inline(kept.request(1, True))
    run_inline(kept.release(1))
    assert kept.value is True


def test_lowest_and_exclusive() -> None:
    applied: list = []
    cap = setting(Rule.LOWEST, 10, applied)
    run_inline(cap.request(1, 5))
    run_inline(cap.request(2, 7))
    assert cap.value == 5
    run_inline(cap.release(1))
    assert cap.value == 7 and applied == [5, 7]
    rate = setting(Rule.EXCLUSIVE, 1, [])
    run_inline(rate.request(1, 2))
    with pytest.raises(ArbitrationDenied):
        run_inline(rate.request(2, 3))
    run_inline(rate.release(1))
    assert run_inline(rate.request(2, 3)) == 3


def test_watchers_see_the_requests_that_made_the_value() -> None:
    seen: list = []
    level = setting(Rule.HIGHEST, 0, [])
    level.watch(2, lambda value: seen.append((value, dict(level.requests))))
    run_inline(level.request(1, 4))
    assert seen == [(4, {1: 4})]
    run_inline(level.request(2, 9))  # its own change: not told
    assert seen == [(4, {1: 4})]


def test_unlogged_settings_leave_no_host_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "vhost_scmi")
    run_inline(setting(Rule.LAST, 0, [], logged=False).request(1, 1))
    assert "host:" not in caplog.text
    run_inline(setting(Rule.LAST, 0, []).request(1, 1))
    assert "host: s of r set to 1" in caplog.text
