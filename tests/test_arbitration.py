# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Arbitration of one host setting between agents, with a fake resource whose writes
are recorded, through real agents: views from a configuration, their dispatchers, and
host calls completed in whatever order a test chooses (as the off-loop executor may)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest

from vhost_scmi.devices.resource import DeviceError, Resource
from vhost_scmi.platform.agents import configured_views
from vhost_scmi.platform.arbitration import ArbitrationDenied, Rule, SharedSetting
from vhost_scmi.platform.config import parse_config
from vhost_scmi.platform.host import HostCall
from vhost_scmi.platform.view import AgentView
from vhost_scmi.scmi.dispatcher import build_dispatcher


class FakeLevel(Resource):
    """A host knob: records every write; a write may be made to fail."""

    blocking = False

    def __init__(self, name: str = "knob") -> None:
        self.name = name
        self.writes: list[int] = []
        self.in_flight = 0
        self.fail_next = False

    def write(self, value: int) -> None:
        assert self.in_flight == 1, "host writes of one setting overlap"
        if self.fail_next:
            self.fail_next = False
            raise DeviceError("write refused", 16)
        self.writes.append(value)


class Driver:
    """Runs coroutines step by step: a host call is started when the coroutine
    yields it and finished when the test says so."""

    def __init__(self, resource: FakeLevel) -> None:
        self.resource = resource
        self.pending: list[tuple[Coroutine[Any, Any, Any], HostCall[Any]]] = []
        self.results: dict[int, Any] = {}

    def start(self, coroutine: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
        self._step(coroutine, None, None)
        return coroutine

    def finish(self, index: int = 0) -> None:
        coroutine, call = self.pending.pop(index)
        try:
            value, error = call.run(), None
        except Exception as exc:
            value, error = None, exc
        finally:
            self.resource.in_flight -= 1
        self._step(coroutine, value, error)

    def drain(self) -> None:
        while self.pending:
            self.finish()

    def _step(self, coroutine: Coroutine[Any, Any, Any], value: Any,
              error: BaseException | None) -> None:
        try:
            call = coroutine.send(value) if error is None else coroutine.throw(error)
        except StopIteration as stop:
            self.results[id(coroutine)] = stop.value
            return
        except Exception as exc:
            self.results[id(coroutine)] = exc
            return
        self.resource.in_flight += 1
        self.pending.append((coroutine, call))

    def result(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.results[id(coroutine)]


CONFIG = {
    "device": [{"id": "a", "spec": "fake,name=alpha"}],
    "agent": [{"name": "vm1", "socket": "/x/1", "control": ["a"]},
              {"name": "vm2", "socket": "/x/2", "control": ["a"]},
              {"name": "vm3", "socket": "/x/3"}],
}


@pytest.fixture
def views() -> list[AgentView]:
    from vhost_scmi.devices.fake import FakeAccelerometer

    return configured_views(parse_config(CONFIG), {"a": [FakeAccelerometer("alpha")]})


def level(view: AgentView, knob: FakeLevel, rule: Rule = Rule.HIGHEST,
          shared: bool = False) -> SharedSetting[int]:
    return view.arbiter.setting(knob, "level", lambda: SharedSetting(
        knob, "level", rule, 0, knob.write, shared=shared))


def test_agents_share_one_arbiter_and_permissions_follow_the_config(views) -> None:
    one, two, three = views
    knob = FakeLevel()
    assert level(one, knob) is level(two, knob) is level(three, knob)
    alpha = one.resources[0]
    assert one.may_control(alpha) and two.may_control(alpha)
    assert not three.may_control(alpha)  # read-only unless listed under control


@pytest.mark.parametrize(("rule", "requests", "expected"), [
    (Rule.HIGHEST, [(1, 3), (2, 7), (1, 5)], 7),
    (Rule.LOWEST, [(1, 3), (2, 7)], 3),
    (Rule.ANY, [(1, False), (2, True), (1, False)], True),
    (Rule.LAST, [(1, 3), (2, 7), (1, 5)], 5),
])
def test_rules_combine_requests(views, rule: Rule, requests, expected) -> None:
    knob = FakeLevel()
    driver = Driver(knob)
    setting = level(views[0], knob, rule)
    for agent, value in requests:
        driver.start(setting.request(agent, value))
        driver.drain()
    assert setting.value == expected
    assert knob.writes[-1] == expected


def test_requests_while_a_write_is_in_flight_are_applied_after_it(views) -> None:
    knob = FakeLevel()
    driver = Driver(knob)
    setting = level(views[0], knob)
    notified: list[tuple[str, int]] = []
    setting.watch(1, lambda value: notified.append(("vm1", value)))
    setting.watch(2, lambda value: notified.append(("vm2", value)))
    first = driver.start(setting.request(1, 4))
    assert len(driver.pending) == 1  # vm1's write is in flight
    second = driver.start(setting.request(2, 9))
    third = driver.start(setting.request(1, 2))
    # Recorded at once, but no second write starts while one is in flight.
    assert len(driver.pending) == 1
    assert setting.requests == {2: 9, 1: 2}
    assert driver.result(second) == 0 and driver.result(third) == 0  # the host still has 0
    driver.drain()
    # vm1's write, then the follow-up with everybody's combined requests.
    assert knob.writes == [4, 9]
    assert driver.result(first) == 9
    assert setting.value == 9
    assert ("vm2", 4) in notified  # vm1's change was told to vm2
    # The follow-up write combined both agents' requests: both are told.
    assert ("vm1", 9) in notified and ("vm2", 9) in notified


def test_a_failed_write_withdraws_the_request_and_keeps_the_others(views) -> None:
    knob = FakeLevel()
    driver = Driver(knob)
    setting = level(views[0], knob)
    driver.start(setting.request(2, 3))
    driver.drain()
    knob.fail_next = True
    failing = driver.start(setting.request(1, 8))
    other = driver.start(setting.request(2, 5))  # arrives during the failing write
    driver.drain()
    assert isinstance(driver.result(failing), DeviceError)
    assert driver.result(other) == 3
    assert setting.requests == {2: 5}
    assert knob.writes == [3, 5]  # vm2's new request still reached the host
    assert setting.value == 5


def test_exclusive_settings(views) -> None:
    knob = FakeLevel()
    driver = Driver(knob)
    setting = level(views[0], knob, Rule.EXCLUSIVE)
    driver.start(setting.request(1, 6))
    driver.drain()
    denied = driver.start(setting.request(2, 1))
    assert isinstance(driver.result(denied), ArbitrationDenied)
    assert setting.owner() == 1 and setting.value == 6


def test_release_at_agent_reset_and_disconnect(views) -> None:
    one, two, _ = views
    knob = FakeLevel()
    driver = Driver(knob)
    for view in views:  # the daemon's executor runs background work; here, the driver
        view.spawn = driver.start
    setting = level(one, knob)
    dispatchers = [build_dispatcher(view) for view in views]
    driver.start(setting.request(1, 8))
    driver.start(setting.request(2, 3))
    driver.drain()
    assert setting.value == 8
    seen: list[int] = []
    setting.watch(1, seen.append)
    # vm1's VMM leaves (the daemon resets its dispatcher): its request and watcher go.
    dispatchers[0].reset()
    driver.drain()
    assert setting.requests == {2: 3}
    assert setting.value == 3 and knob.writes[-1] == 3
    assert seen == []  # its own release: vm1 is not told (its watcher stays for its next VMM)
    # vm2 resets itself (RESET_AGENT_CONFIGURATION): nothing left; the host keeps 3.
    two.reset_agent()
    driver.drain()
    assert setting.requests == {}
    assert setting.value == 3 and knob.writes == [8, 3]
    # An agent without requests costs no host call at reset.
    dispatchers[2].reset()
    assert driver.pending == []
