"""HAProxy's answers read into the gateway's types, runtime command lines, and the
configuration files (checked with `haproxy -c` when HAProxy is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from services.gateway import haproxy_config
from services.gateway.haproxy_api import (
    command_line,
    parse_backends,
    parse_info,
    parse_map,
    parse_old_workers,
    parse_servers,
)
from services.gateway.model import (
    AddRoute,
    AddServer,
    Admin,
    DelRoute,
    DelServer,
    Server,
    SetServerState,
    slot_names,
)
from services.gateway.plan import Layout
from shared.settings import Settings

# answers of HAProxy 2.6.12, as read on its stats socket
SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
4 slot0001 1 127.0.0.1:18101 127.0.0.1 2 0 1 1 7 1 0 2 0 0 0 0 - 18101 - 0 0 - - 0
4 slot0001 2 127.0.0.1:18102 127.0.0.1 2 8 1 1 7 1 0 2 0 0 0 0 - 18102 - 0 0 - - 0
5 slot0002 1 127.0.0.1:18103 127.0.0.1 0 1 1 1 0 1 0 0 0 0 0 0 - 18103 - 0 0 - - 0
9 other 1 s1 127.0.0.1 2 0 1 1 0 1 0 0 0 0 0 0 - 18109 - 0 0 - - 0

"""  # noqa: E501
SERVERS_CONN = """# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[1]
slot0001/127.0.0.1:18101 4/1 127.0.0.1 18101 - 5000 0 3 1 1 0 -1 1 1
slot0001/127.0.0.1:18102 4/2 127.0.0.1 18102 - 5000 2 3 1 0 0 -1 0 0

"""  # noqa: E501
SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
20505           master          64 [failed: 0]  0d00h13m18s     2.6.12-1+deb12u4
# workers
4157            worker          0               0d00h00m01s     2.6.12-1+deb12u4
# old workers
22525           worker          1               0d00h01m22s     2.6.12-1+deb12u4
# programs

"""
SLOTS = ("slot0001", "slot0002")


def test_servers_with_state_and_connections() -> None:
    got = parse_servers(SERVERS_STATE, SERVERS_CONN, SLOTS)
    assert got == {
        "slot0001": {
            "127.0.0.1:18101": Server("127.0.0.1:18101", "127.0.0.1:18101", Admin.READY, 0, 1),
            "127.0.0.1:18102": Server("127.0.0.1:18102", "127.0.0.1:18102", Admin.DRAIN, 2, 0),
        },
        # just added, not yet ready; not in the connection table: counted busy
        "slot0002": {
            "127.0.0.1:18103": Server("127.0.0.1:18103", "127.0.0.1:18103", Admin.MAINT, 1, 0)
        },
    }


def test_info_backends_map_and_old_workers() -> None:
    info = parse_info("Name: HAProxy\nVersion: 2.6.12\nPid: 20516\nUptime_sec: 7\n")
    assert (info.pid, info.uptime_s) == (20516, 7)
    assert parse_backends("# name\nnot_found\nslot0010\nslot0002\nslot0001\n") == (
        "slot0001",
        "slot0002",
        "slot0010",
    )
    assert parse_map("0x55c05faca760 p-s slot0001\n0x55c05fc7fce0 p-t slot0002\n") == {
        "p-s": "slot0001",
        "p-t": "slot0002",
    }
    assert parse_old_workers(SHOW_PROC) == 1
    assert parse_old_workers(SHOW_PROC.replace("# old workers\n22525", "# programs\n22525")) == 0


@pytest.mark.parametrize(
    ("command", "line", "success"),
    [
        (
            AddServer("slot0001", "127.0.0.1:1", "127.0.0.1:1"),
            "add server slot0001/127.0.0.1:1 127.0.0.1:1 pool-max-conn -1 pool-purge-delay 5s",
            "New server registered.",
        ),
        (
            SetServerState("slot0001", "a", Admin.DRAIN),
            "set server slot0001/a state drain",
            "",
        ),
        (DelServer("slot0001", "a"), "del server slot0001/a", "Server deleted."),
        (AddRoute("p-s", "slot0001"), "add map /d/routes.map p-s slot0001", ""),
        (DelRoute("p-s"), "del map /d/routes.map p-s", ""),
    ],
)
def test_command_lines(command: object, line: str, success: str) -> None:
    assert command_line(command, Path("/d/routes.map")) == (line, success)  # type: ignore[arg-type]


def _settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"SERVICECTL_DATA_DIR": str(tmp_path / "data")})


def test_config_routes_by_exact_first_segment_and_answers_json(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    layout = Layout(
        slots=slot_names(2),
        routes={"p-s": "slot0001"},
        servers={"slot0001": ("127.0.0.1:32001", "127.0.0.1:32002")},
    )
    files = haproxy_config.files(settings, layout)
    config = files[settings.haproxy_config_path]
    assert files[settings.haproxy_map_path] == "p-s slot0001\n"
    assert f"map({settings.haproxy_map_path},not_found)" in config
    assert "path,field(2,/)" in config  # the whole first segment, not a prefix
    assert f"stats socket {settings.haproxy_socket_path} mode 600 level admin" in config
    assert "server 127.0.0.1:32002 127.0.0.1:32002 pool-max-conn -1" in config
    assert config.count("\nbackend slot") == 2 and config.endswith("\n")
    assert (
        "HTTP/1.1 502 Bad Gateway"
        in files[settings.haproxy_config_path.parent / "haproxy-503.http"]
    )
    assert shutil.which("haproxy"), "haproxy is missing: `make bootstrap` installs it"
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    r = subprocess.run(
        ["haproxy", "-c", "-f", str(settings.haproxy_config_path)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_paths_haproxy_cannot_take_are_refused(tmp_path: Path) -> None:
    spaced = Settings.from_env({"SERVICECTL_DATA_DIR": str(tmp_path / "my data")})
    with pytest.raises(haproxy_config.UnusablePath, match="SERVICECTL_DATA_DIR"):
        haproxy_config.initial_files(spaced)
    deep = Settings.from_env({"SERVICECTL_DATA_DIR": str(tmp_path / ("d" * 100))})
    with pytest.raises(haproxy_config.UnusablePath, match="too long for a unix socket"):
        haproxy_config.initial_files(deep)


def test_argv_master_worker_with_a_private_master_socket(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    argv = haproxy_config.argv(settings)
    assert argv[:3] == ["/usr/sbin/haproxy", "-W", "-db"]
    assert argv[-1] == f"{settings.haproxy_master_socket_path},mode,600"


def test_only_the_adapter_speaks_to_haproxy() -> None:
    root = Path(__file__).resolve().parents[2]
    speaking = [
        str(path.relative_to(root))
        for path in sorted((root / "services").rglob("*.py"))
        if "open_unix_connection" in path.read_text()
    ]
    assert speaking == ["services/gateway/haproxy_api.py"]


def test_make_up_starts_haproxy_with_the_routes_the_gateway_last_wrote(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    last = Layout(
        slots=slot_names(80),
        routes={"p-s": "slot0003", "p-t": "slot0001"},
        servers={"slot0003": ("127.0.0.1:32001",)},
    )
    written = haproxy_config.files(settings, last)[haproxy_config.layout_path(settings)]
    again = haproxy_config.initial_files(settings, written)
    assert again == haproxy_config.files(settings, last)
    # nothing written yet, or not ours: the empty pool of SERVICECTL_GATEWAY_SLOTS
    for previous in (None, "", "{not json", '{"slots": "x"}'):
        config = haproxy_config.initial_files(settings, previous)[settings.haproxy_config_path]
        assert config.count("\nbackend slot") == settings.gateway_slots
        assert "    server " not in config
