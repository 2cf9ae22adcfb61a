"""The installed `servicectl` binary against the real platform: the whole lifecycle.

Each test runs `.venv/bin/servicectl` as a subprocess with its own
XDG_CONFIG_HOME, DOCKER_CONFIG and TMPDIR (so the login and docker
credentials it writes, and must clean up, are visible), against the session's
stack: nats-server, registry, HAProxy, api, deployer, log collector, gateway.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests import apps
from tests.client import make_user, unique
from tests.deploying import containers, get
from tests.stack import ROOT, Stack

SERVICECTL = Path(sys.executable).parent / "servicectl"
PASSWORD = "correct horse"


@dataclass
class Cli:
    """One user's shell: its environment and the directories the CLI may write to."""

    stack: Stack
    home: Path
    project: str
    user: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICECTL_")}
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / "xdg"),
            DOCKER_CONFIG=str(self.home / "docker"),
            TMPDIR=str(self.home / "tmp"),
            SERVICECTL_API=self.stack.api_base,
        )
        return env

    @property
    def config_file(self) -> Path:
        return self.home / "xdg" / "servicectl" / "config.json"

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SERVICECTL), *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def ok(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        r = self(*args, input=input)
        assert r.returncode == 0, f"servicectl {' '.join(args)}: {r.returncode}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        return r

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(SERVICECTL), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def login(self) -> None:
        self.ok(
            "login", "--user", self.user, "--project", self.project, "--password-stdin",
            input=PASSWORD + "\n",
        )  # fmt: skip


def new_cli(stack: Stack, base: Path) -> Cli:
    for sub in ("xdg", "docker", "tmp"):
        (base / sub).mkdir(parents=True)
    project = unique("c")
    user, _ = make_user(stack, project, PASSWORD)
    return Cli(stack, base, project, user)


@pytest.fixture
def cli(stack: Stack, tmp_path: Path) -> Cli:
    c = new_cli(stack, tmp_path / "home")
    c.login()
    return c


@pytest.fixture(scope="module")
def app_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return apps.build_context(tmp_path_factory.mktemp("app-ctx"))


class Follower:
    """A running `servicectl ... -f`: its stdout lines, read by a thread as they come."""

    def __init__(self, cli: Cli, *args: str) -> None:
        self.proc = cli.popen(*args)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def drain(self) -> None:
        """Take the remaining lines of a finished process."""
        while (line := self.lines.get(timeout=5)) is not None:
            self.seen.append(line)

    def until(self, needle: str, timeout: float = 20) -> str:
        """The first new line that contains `needle`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} within {timeout}s; got {self.seen}")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None
    return proc.returncode, proc.stderr.read()


# ---------------------------------------------------------------- the lifecycle
def test_lifecycle(cli: Cli, stack: Stack, app_context: Path) -> None:
    # login stored a private config file; whoami reads it
    assert oct(cli.config_file.stat().st_mode & 0o777) == "0o600"
    stored = json.loads(cli.config_file.read_text())
    assert stored["api"] == stack.api_base.rstrip("/") and stored["token"].startswith("sct_")
    assert f"{cli.user} in project {cli.project}" in cli.ok("whoami").stdout

    created = cli.ok("create", "web", "--health-path", "/health/", "--health-codes", "200")
    url = f"{stack.gateway_url}/{cli.project}-web"
    assert url in created.stdout
    listed = cli.ok("ls").stdout
    assert "web" in listed and "INACTIVE" in listed

    # push: docker build + push with credentials that never reach DOCKER_CONFIG
    pushed = cli.ok("push", "web", str(app_context), "--tag", "v1")
    assert pushed.stdout.strip() == f"{stack.registry}/{cli.project}/web:v1"
    assert "Pushing" in pushed.stderr and "digest" in pushed.stderr
    assert list((cli.home / "docker").iterdir()) == []
    assert list((cli.home / "tmp").iterdir()) == []
    assert "password" not in pushed.stderr.lower()

    # deploy: exit 0 once revision 1 serves; the URL is the result
    deployed = cli.ok("deploy", "web", "--tag", "v1", "--env", "GREETING=hi",
                      "--memory-reservation", "16", "--memory-limit", "32")  # fmt: skip
    assert deployed.stdout.strip() == url
    assert "deployment.completed" in deployed.stderr
    assert "Revision 1 of web is serving" in deployed.stderr
    assert get(url + "/").text.strip() == f"hi from /{cli.project}-web"

    st = json.loads(cli.ok("status", "web", "--json").stdout)
    assert st["status"]["service_status"] == "ACTIVE"
    assert st["status"]["serving_revision"] == 1
    assert st["status"]["target_health"]["health_check_path"] == f"/{cli.project}-web/health/"
    human = cli.ok("status", "web").stdout
    assert "Revision  1 (serving: 1)" in human and "RUNNING" in human and "healthy" in human

    # a deploy that crashes: non-zero, the reason and the task's output; revision 1 serves on
    failed = cli("deploy", "web", "--env", "MODE=crash")
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert "servicectl: deployment of revision 2 of web failed" in failed.stderr
    assert "exited with code 3" in failed.stderr
    assert "fatal: cannot connect to the database" in failed.stderr
    assert "revision 1 keeps serving" in failed.stderr
    assert failed.stdout == ""
    assert get(url + "/").text.strip() == f"hi from /{cli.project}-web"

    revisions = cli.ok("revisions", "web", "--env").stdout.splitlines()
    assert revisions[0].split()[:2] == ["REV", "TAG"]
    assert revisions[1].startswith("1 ") and "serving" in revisions[1]
    assert (
        revisions[2].startswith("2 ")
        and "current" in revisions[2]
        and "MODE=crash" in (revisions[2])
    )

    # rollback (to the serving revision) follows like deploy
    rolled = cli.ok("rollback", "web")
    assert rolled.stdout.strip() == url
    assert "definition of revision 1, as revision 3" in rolled.stderr
    assert "Revision 3 of web is serving" in rolled.stderr
    revs = json.loads(cli.ok("revisions", "web", "--json").stdout)
    assert revs["revision"] == 3
    env3 = {e["name"]: e["value"] for e in revs["revisions"][-1]["environment"]}
    assert env3["GREETING"] == "hi" and "MODE" not in env3

    # a later deploy starts from the current values: only the greeting changes
    cli.ok("deploy", "web", "-e", "GREETING=bonjour")
    assert get(url + "/").text.strip() == f"bonjour from /{cli.project}-web"
    td = json.loads(cli.ok("status", "web", "--json").stdout)["status"]["tasks"][0][
        "task_definition"
    ]
    assert (td["revision"], td["container_memory_reservation"], td["container_memory_limit"]) == (
        4,
        16,
        32,
    )

    # logs: the REST view, by task
    logs = cli.ok("logs", "web", "-n", "5", "--streams", "5").stdout
    assert f"serving /{cli.project}-web on port 8080" in logs
    assert "fatal: cannot connect to the database" in logs  # revision 2's task
    assert "[4-" in logs

    events = cli.ok("events", "web", "-n", "50").stdout
    assert "deployment.failed" in events and "deployment.completed" in events

    # delete: asks, then removes everything
    refused = cli("delete", "web", input="nope\n")
    assert refused.returncode == 1 and "not deleted" in refused.stderr
    assert "Deleted web." in cli.ok("delete", "web", input="web\n").stdout
    assert get(url + "/").status_code == 404
    assert containers(stack, cli.project, "web") == []
    assert "No services yet" in cli.ok("ls").stdout
    gone = cli("status", "web")
    assert gone.returncode == 1
    assert gone.stderr == f"servicectl: no service named 'web' in project '{cli.project}'\n"

    # logout revokes the token
    token = stored["token"]
    assert "token is revoked" in cli.ok("logout").stdout
    assert not cli.config_file.exists()
    r = requests.get(stack.api_base + "services", headers={"X-Auth-Token": token}, timeout=10)
    assert r.status_code == 403
    after = cli("ls")
    assert (after.returncode, after.stderr) == (
        1,
        "servicectl: not logged in: run `servicectl login` first\n",
    )


def test_follow_logs_and_events_over_websockets(cli: Cli, stack: Stack, app_context: Path) -> None:
    cli.ok("create", "tail")
    cli.ok("push", "tail", str(app_context), "--tag", "v1")
    url = cli.ok("deploy", "tail", "--tag", "v1").stdout.strip()

    logs = Follower(cli, "logs", "tail", "-f", "-n", "5")
    events = Follower(cli, "events", "tail", "-f", "-n", "3")
    try:
        logs.until(f"serving /{cli.project}-tail on port 8080")
        events.until("deployment.completed")
        # the api restarts (close code 1001): both follows reconnect by themselves
        stack.procs["api"].restart()
        # live: a new deploy's events and its new task's output arrive as they happen
        cli.ok("deploy", "tail", "--env", "GREETING=again")
        events.until("revision 2 is serving")
        logs.until("[2-")
        assert get(url + "/").text.strip() == f"again from /{cli.project}-tail"
        # deleting the service ends both follows normally
        cli.ok("delete", "tail", "--yes")
        for f in (logs, events):
            f.proc.wait(timeout=20)
            code, err = stop(f.proc)
            assert code == 0, err
            assert "reconnecting" in err and "(reconnected)" in err, err
            assert "tail was deleted" in err
            assert "Traceback" not in err
        # nothing was printed twice although the backlog was sent again on reconnecting
        for f in (logs, events):
            f.drain()
            assert len(f.seen) == len(set(f.seen)), f.seen
    finally:
        for f in (logs, events):
            stop(f.proc)


def test_logs_follow_resumes_exactly_after_an_api_restart(
    cli: Cli, stack: Stack, app_context: Path
) -> None:
    """Regression: after a reconnect the follow replayed up to 500 older lines, out of order."""
    cli.ok("create", "chatty")
    cli.ok("push", "chatty", str(app_context), "--tag", "v1")
    cli.ok("deploy", "chatty", "--tag", "v1", "-e", "MODE=count", "-e", "COUNT_SLEEP_US=20000")
    logs = Follower(cli, "logs", "chatty", "-f", "-n", "3")

    def numbered(line: str) -> int:
        m = re.search(r"line (\d+)$", line)
        return int(m.group(1)) if m else 0

    try:
        first = numbered(logs.until("line "))
        while numbered(logs.until("line ")) < first + 30:  # well past the backlog of 3
            pass
        stack.procs["api"].restart()
        resumed = numbered(logs.seen[-1])
        while numbered(logs.until("line ", timeout=30)) < resumed + 100:
            pass
    finally:
        _code, err = stop(logs.proc)
    logs.drain()
    assert "(reconnected)" in err, err
    numbers = [int(m.group(1)) for line in logs.seen if (m := re.search(r"line (\d+)$", line))]
    assert numbers == sorted(numbers), "a line came after a later one"
    assert len(numbers) == len(set(numbers)), "a line came twice"
    first = numbers[0]
    assert numbers == list(range(first, first + len(numbers))), "a line went missing"
    cli.ok("delete", "chatty", "--yes")


def test_example_hello_with_port_and_context_root(cli: Cli, stack: Stack, tmp_path: Path) -> None:
    example = tmp_path / "hello"
    shutil.copytree(ROOT / "examples" / "hello", example)
    subprocess.run([str(example / "prepare.sh")], check=True, timeout=30)
    cli.ok("create", "hello", "--health-path", "/healthz", "--health-codes", "200")
    cli.ok("push", "hello", str(example), "--tag", "v1")
    out = cli.ok("deploy", "hello", "--tag", "v1", "--port", "9000", "-e", "GREETING=Howdy")
    url = out.stdout.strip()
    page = get(url + "/")
    assert page.status_code == 200
    assert "<h1>Howdy</h1>" in page.text
    assert f"Served under /{cli.project}-hello on port 9000" in page.text
    assert get(url + "/healthz").text.strip() == "ok"
    cli.ok("delete", "hello", "--yes")


def test_demo_script_is_rerunnable(stack: Stack, tmp_path: Path) -> None:
    home = tmp_path / "home"
    for sub in ("xdg", "docker", "tmp"):
        (home / sub).mkdir(parents=True)
    project = unique("d")
    env = {
        **stack.env,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "xdg"),
        "DOCKER_CONFIG": str(home / "docker"),
        "TMPDIR": str(home / "tmp"),
        "SERVICECTL_API": stack.api_base,
        "DEMO_USER": unique("demo"),
        "DEMO_PROJECT": project,
        "VENV": str(Path(sys.executable).parent.parent),
    }
    outputs = []
    for run in (1, 2):
        r = subprocess.run(
            [str(ROOT / "examples" / "demo.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, f"run {run}:\n{r.stdout}\n{r.stderr}"
        assert "<h1>Hello from the servicectl demo</h1>" in r.stdout
        assert f"{stack.gateway_url}/{project}-hello" in r.stdout
        assert "hello: serving" in r.stdout  # its logs
        assert list((home / "docker").iterdir()) == []
        outputs.append(r.stdout)
    first, second = outputs
    assert "creating user" in first and "Created service hello" in first
    assert "creating user" not in second and "hello exists already" in second
    cli = Cli(stack, home, project, env["DEMO_USER"])
    cli.ok("delete", "hello", "--yes")


def test_expired_session_and_unreachable_api(stack: Stack, tmp_path: Path) -> None:
    c = new_cli(stack, tmp_path / "home")
    r = c("login", "--user", c.user, "--project", c.project, "--password-stdin",
          input="wrong password\n")  # fmt: skip
    assert (r.returncode, r.stderr) == (1, "servicectl: invalid username, password or project\n")
    c.login()
    token = json.loads(c.config_file.read_text())["token"]
    requests.delete(
        stack.api_base + "auth/tokens/current", headers={"X-Auth-Token": token}, timeout=10
    )
    r = c("ls")
    assert r.returncode == 1
    assert r.stderr == (
        "servicectl: unknown or revoked session token (log in again: servicectl login)\n"
    )
    r = c("login", "--api", "http://127.0.0.1:9", "--user", "u", "--project", "p",
          "--password-stdin", input="x\n")  # fmt: skip
    assert r.returncode == 1 and r.stderr.startswith("servicectl: cannot reach the API at ")
    assert r.stderr.count("\n") == 1


def test_deploy_without_service_or_image(cli: Cli, stack: Stack) -> None:
    r = cli("deploy", "ghost")
    assert r.returncode == 1
    assert "no service named 'ghost'" in r.stderr and "servicectl create ghost" in r.stderr
    cli.ok("create", "empty")
    r = cli("deploy", "empty", "--tag", "missing", "--timeout", "60")
    assert r.returncode == 1, r.stderr
    assert "is not in the registry" in r.stderr
    assert "servicectl push empty DIR --tag missing" in r.stderr
    cli.ok("delete", "empty", "--yes")


# ---------------------------------------------------------------- after failures (issue 16)
def test_changes_after_a_failed_deploy_build_on_the_serving_revision(
    cli: Cli, stack: Stack, app_context: Path
) -> None:
    url = f"{stack.gateway_url}/{cli.project}-oops"
    cli.ok("create", "oops")
    cli.ok("push", "oops", str(app_context), "--tag", "v1")
    cli.ok("deploy", "oops", "--tag", "v1", "-e", "GREETING=hi",
           "--memory-reservation", "16", "--memory-limit", "32")  # fmt: skip
    failed = cli("deploy", "oops", "--env", "MODE=crash")
    assert failed.returncode == 1, failed.stderr

    # ls and status show that the newest revision failed and which one serves
    listed = cli.ok("ls").stdout
    row = next(line for line in listed.splitlines() if line.startswith("oops "))
    assert row.split()[1:5] == ["ACTIVE", "2", "1", "FAILED"], listed
    assert "oops: revision 2 failed: " in listed and "; revision 1 serves" in listed
    (entry,) = json.loads(cli.ok("ls", "--json").stdout)
    assert (entry["name"], entry["revision"], entry["serving_revision"], entry["serving"]) == (
        "oops",
        2,
        1,
        True,
    )
    assert entry["deployment"]["status"] == "FAILED" and entry["deployment"]["revision"] == 2
    assert entry["url"] == url
    human = cli.ok("status", "oops").stdout
    assert "Revision  2 (serving: 1)" in human and "Deploy    revision 2 FAILED: " in human

    # env set builds on revision 1 (building on 2 would crash again) and says so
    again = cli.ok("env", "set", "oops", "GREETING=again")
    assert "revision 2 (the newest) failed" in again.stderr
    assert "Deploying oops revision 3 (from serving revision 1)" in again.stderr
    assert again.stdout.strip() == url
    assert get(url + "/").text.strip() == f"again from /{cli.project}-oops"
    revs = json.loads(cli.ok("revisions", "oops", "--json").stdout)
    assert revs["serving_revision"] == 3
    rev3 = revs["revisions"][-1]
    assert (rev3["container_memory_reservation"], rev3["container_memory_limit"]) == (16, 32)

    # env: the user's variables only, masked unless --show; unset of a missing one is refused
    assert cli.ok("env", "oops").stdout.splitlines() == ["GREETING=*** (5 characters)"]
    assert cli.ok("env", "oops", "--show").stdout.splitlines() == ["GREETING=again"]
    listed_env = json.loads(cli.ok("env", "oops", "--json").stdout)
    assert listed_env == {
        "name": "oops",
        "revision": 3,
        "serving": True,
        "environment": [{"name": "GREETING", "masked": True, "length": 5}],
    }
    nothing = cli("env", "unset", "oops", "NOPE")
    assert nothing.returncode == 2 and "nothing to unset" in nothing.stderr, nothing.stderr
    gone = cli.ok("env", "unset", "oops", "GREETING", "--json")
    lines = [json.loads(line) for line in gone.stdout.splitlines()]
    assert lines[0]["kind"] == "update" and lines[0]["changes"] == ["-env GREETING"]
    assert lines[-1]["kind"] == "result" and lines[-1]["ok"] and lines[-1]["revision"] == 4
    assert cli.ok("env", "oops").stdout == ""
    cli.ok("delete", "oops", "--yes")


def test_a_failed_first_deploy_is_not_serving_and_json_lines(
    cli: Cli, stack: Stack, app_context: Path
) -> None:
    cli.ok("create", "first")
    cli.ok("push", "first", str(app_context), "--tag", "v1")
    r = cli("deploy", "first", "--tag", "v1", "--env", "MODE=crash", "--json")
    assert r.returncode == 1, r.stderr
    assert "servicectl: deployment of revision 1 of first failed" in r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    first, last = lines[0], lines[-1]
    assert (first["kind"], first["action"], first["revision"], first["base"]) == (
        "update",
        "deploy",
        1,
        "defaults",
    )
    assert {"kind": "event", "type": "deployment.started"}.items() <= next(
        x for x in lines if x.get("type") == "deployment.started"
    ).items()
    assert (last["kind"], last["ok"], last["status"], last["serving_revision"]) == (
        "result",
        False,
        "FAILED",
        0,
    )
    assert "fatal: cannot connect to the database" in last["last_lines"]

    row = next(line for line in cli.ok("ls").stdout.splitlines() if line.startswith("first "))
    assert row.split()[1:3] == ["NOT", "SERVING"], row
    assert "Service   first (NOT SERVING)" in cli.ok("status", "first").stdout

    # nothing serves: the next deploy builds on the newest revision
    fixed = cli.ok("deploy", "first", "--unset-env", "MODE", "--json")
    lines = [json.loads(line) for line in fixed.stdout.splitlines()]
    assert (lines[0]["base"], lines[0]["base_revision"], lines[0]["tag"]) == ("newest", 1, "v1")
    assert lines[-1] == {
        "kind": "result",
        "ok": True,
        "status": "COMPLETED",
        "name": "first",
        "revision": 2,
        "url": f"{stack.gateway_url}/{cli.project}-first",
        "reason": "",
        "serving_revision": 2,
    }
    assert all(x["kind"] in ("update", "event", "result") for x in lines)

    # logs, events and whoami as JSON lines; -n 0 prints nothing
    logs = [json.loads(x) for x in cli.ok("logs", "first", "--json").stdout.splitlines()]
    assert logs and all(x["task"].startswith("2-") for x in logs)
    assert {"time", "task", "stream", "message"} <= logs[0].keys()
    assert cli.ok("logs", "first", "-n", "0").stdout == ""
    events = [json.loads(x) for x in cli.ok("events", "first", "--json").stdout.splitlines()]
    assert any(e["type"] == "deployment.completed" for e in events)
    me = json.loads(cli.ok("whoami", "--json").stdout)
    assert (me["username"], me["project"]) == (cli.user, cli.project)
    cli.ok("delete", "first", "--yes")


def test_wrong_input_exits_2_and_names_the_flag(cli: Cli, stack: Stack) -> None:
    cli.ok("create", "bad")
    r = cli("deploy", "bad", "--memory-limit", "5")
    assert (r.returncode, r.stderr) == (
        2,
        "servicectl: --memory-limit must be at least 6 (MB), got 5\n",
    )
    r = cli("deploy", "bad", "--memory-reservation", "6", "--memory-limit", "1000000")
    assert r.returncode == 2 and r.stderr.startswith("servicectl: --memory-limit must be at most ")
    r = cli("deploy", "bad", "--tag", "v1/x")
    assert r.returncode == 2 and r.stderr.startswith("servicectl: --tag must "), r.stderr
    r = cli("create", "Bad")
    assert r.returncode == 2 and "must begin with a lower-case letter" in r.stderr
    r = cli("health", "bad", "--path", "no-slash")
    assert (r.returncode, r.stderr) == (2, "servicectl: --path must start with '/'\n")
    # a service never deployed has no logs, and says how to deploy it
    r = cli("logs", "bad")
    assert (r.returncode, r.stderr) == (
        1,
        "servicectl: bad has not been deployed yet: deploy it with servicectl deploy bad "
        "--tag TAG\n",
    )
    assert "INACTIVE" in cli.ok("ls").stdout
    cli.ok("delete", "bad", "--yes")


def test_health_check_changes_without_a_revision(cli: Cli, stack: Stack) -> None:
    cli.ok("create", "hc", "--health-path", "/health/", "--health-codes", "200")
    shown = cli.ok("health", "hc").stdout.strip()
    assert shown == f"hc: GET /{cli.project}-hc/health/ every 10 s, healthy on 200"
    changed = json.loads(cli.ok("health", "hc", "--codes", "200-399", "--json").stdout)
    assert changed == {
        "name": "hc",
        "health_check": {
            "path": f"/{cli.project}-hc/health/",
            "rel_path": "/health/",
            "status_codes": "200-399",
            "interval": 10,
        },
    }
    st = json.loads(cli.ok("status", "hc", "--json").stdout)["status"]
    assert st["revision"] == 0 and st["target_health"]["status_codes"] == "200-399"
    cli.ok("delete", "hc", "--yes")


def test_scale(cli: Cli, stack: Stack, app_context: Path) -> None:
    cli.ok("create", "many")
    cli.ok("push", "many", str(app_context), "--tag", "v1")
    cli.ok("deploy", "many", "--tag", "v1", "--memory-reservation", "8", "--memory-limit", "32")
    r = cli("scale", "many", "2", "--json", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0]["kind"] == "update" and lines[0]["count"] == 2
    assert lines[-1]["kind"] == "result" and lines[-1]["count_running"] == 2
    assert any(x["kind"] == "task" for x in lines)
    st = json.loads(cli.ok("status", "many", "--json").stdout)["status"]
    assert st["count_running"] == 2
    cli.ok("scale", "many", "1")
    cli.ok("delete", "many", "--yes")
