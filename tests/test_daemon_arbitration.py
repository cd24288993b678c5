# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""The daemon's sockets are agents of one platform: their requests on a shared clock are
arbitrated (enabled while ANY agent has it enabled; the rate is EXCLUSIVE), and an agent
whose VMM leaves withdraws its requests."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

from domain_helpers import CLOCK
from scmi_helpers import header
from test_devices_perf_power import policy
from vhost_scmi.scmi.codec import pack_header

from vhost_scmi.vhost.frontend import GuestRam, VhostUserFrontend


@contextlib.contextmanager
def session(path: Path):
    frontend = VhostUserFrontend(str(path))
    ram = GuestRam()
    try:
        queues = frontend.setup(ram)
        yield queues[0]
    finally:
        frontend.close()
        ram.close()


def status(cmdq, message: int, *params: int, payload: bytes = b"") -> int:
    request = struct.pack(f"<I{len(params)}I", header(CLOCK, message), *params) + payload
    return struct.unpack_from("<i", cmdq.transact(request, 256), 4)[0]


def rate(cmdq) -> int:
    answer = cmdq.transact(struct.pack("<II", header(CLOCK, 0x6), 0), 256)
    return struct.unpack_from("<Q", answer, 8)[0]


def test_two_sockets_share_a_clock_by_the_rules(start_daemon, short_tmp: Path) -> None:
    base = short_tmp / "vm.sock"
    daemon = start_daemon("-c", "2", "-d", "fake-clock,name=bus,rates=100:200:300",
                          socket_path=base, wait=False)
    paths = [Path(f"{base}{index}") for index in range(2)]
    for path in paths:
        daemon.socket_path = path
        daemon.wait_accepting()
    with session(paths[0]) as one:
        with session(paths[1]) as two:
            assert status(one, 0x7, 0, 1, 0) == 0  # agent 1 enables
            assert status(two, 0x7, 0, 1, 0) == 0  # agent 2 enables
            assert status(one, 0x7, 0, 0, 0) == 0  # agent 1 no longer needs it
            assert "fake-clock bus: gated" not in daemon.log()
            assert status(one, 0x5, 0, 0, payload=struct.pack("<Q", 200)) == 0
            assert status(two, 0x5, 0, 0, payload=struct.pack("<Q", 300)) == -3  # DENIED
            assert rate(two) == 200
        # VMM 2 left: its enable is withdrawn, nobody wants the clock any more.
        daemon.wait_log("fake-clock bus: gated")
        assert status(one, 0x5, 0, 0, payload=struct.pack("<Q", 100)) == 0
    # VMM 1 left too: the rate is free for whoever comes next.
    with session(paths[1]) as two:
        assert status(two, 0x5, 0, 0, payload=struct.pack("<Q", 300)) == 0
        assert rate(two) == 300
    assert daemon.alive()


PERF = 0x13
LEVEL_SET, NOTIFY_LEVEL = 0x7, 0xA
LEVEL_CHANGED = 0x1


def test_two_sockets_on_one_cpufreq_domain_host_gets_the_higher_level(
        start_daemon, short_tmp: Path) -> None:
    directory = policy(short_tmp)
    setspeed = directory / "scaling_setspeed"
    base = short_tmp / "vm.sock"
    daemon = start_daemon("-c", "2", "-d", f"cpufreq,policy={directory},control=level",
                          socket_path=base, wait=False)
    paths = [Path(f"{base}{index}") for index in range(2)]
    for path in paths:
        daemon.socket_path = path
        daemon.wait_accepting()

    def level_set(cmdq, khz: int) -> int:
        request = struct.pack("<III", header(PERF, LEVEL_SET), 0, khz)
        return struct.unpack_from("<i", cmdq.transact(request, 256), 4)[0]

    def level_changed(agent: int, khz: int) -> bytes:
        return struct.pack("<IIII", pack_header(LEVEL_CHANGED, 3, PERF, 0), agent, 0, khz)

    ram_one, ram_two = GuestRam(), GuestRam()
    one_vmm, two_vmm = VhostUserFrontend(str(paths[0])), VhostUserFrontend(str(paths[1]))
    try:
        one, _ = one_vmm.setup(ram_one)
        two, two_events = two_vmm.setup(ram_two)
        two_events.post_buffers(4, 136)
        notify = struct.pack("<III", header(PERF, NOTIFY_LEVEL), 0, 1)
        assert struct.unpack_from("<i", two.transact(notify, 256), 4)[0] == 0

        assert level_set(one, 1800000) == 0  # agent 1 asks for the top level
        assert setspeed.read_text().strip() == "1800000"
        [event] = two_events.wait_used(1)
        assert event.data == level_changed(1, 1800000)  # agent 2 hears of it

        assert level_set(two, 600000) == 0  # lower than agent 1's request: no change
        assert setspeed.read_text().strip() == "1800000"

        assert level_set(one, 600000) == 0  # now both want the lowest level
        assert setspeed.read_text().strip() == "600000"
        [event] = two_events.wait_used(1)
        assert event.data == level_changed(1, 600000)
    finally:
        for vmm, ram in ((one_vmm, ram_one), (two_vmm, ram_two)):
            vmm.close()
            ram.close()
    # Every host change is logged, and only the changes: two writes for three requests.
    changes = [line for line in daemon.log().splitlines() if "host: level of" in line]
    assert [line.split(" set to ")[1].split()[0] for line in changes] == ["1800000", "600000"]
    assert daemon.alive()
