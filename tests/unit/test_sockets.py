"""Reading the ports a task listens on from /proc/<pid>/net/tcp."""

from __future__ import annotations

from services.deployer.sockets import listening_ports

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 00000000:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0B00007F:B2E5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 0100007F:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 0
   1: 00000000000000000000000001000000:1F93 00000000000000000000000000000000:0000 0A 0
"""


def test_listening_ports_are_read_from_both_tables_without_loopback() -> None:
    # 127.0.0.11:B2E5 is Docker's DNS resolver in the task; 127.0.0.1 and ::1 are unreachable
    assert listening_ports([TCP, TCP6]) == {0x2382, 0x1F91}
    assert listening_ports([TCP.splitlines()[0]]) == set()
    assert listening_ports(["header\n garbage line here\n"]) == set()
