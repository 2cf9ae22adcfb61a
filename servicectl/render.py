"""Text for people: tables, the status report, revisions, event and log lines. Pure, no I/O.

Every function takes decoded API answers and returns strings; the CLI prints
them. Timestamps are shown as the API sends them (UTC, ISO 8601), shortened
to the second.
"""

from __future__ import annotations

from collections.abc import Sequence

from servicectl.models import (
    EnvVar,
    Event,
    LogEvent,
    LogStream,
    Revisions,
    ServiceSummary,
    ServiceView,
    Status,
    Task,
)
from servicectl.states import NOT_SERVING, PENDING, ServiceState, in_cli_words, service_state


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], gap: int = 2) -> str:
    """Left-aligned columns as wide as their widest cell; the last column is not padded."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        lines.append((" " * gap).join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text.replace("\n", " ") if text else "-"


def short_time(iso: str) -> str:
    """'2025-01-02T03:04:05.678901Z' -> '2025-01-02 03:04:05'."""
    if len(iso) >= 19 and iso[10] == "T":
        return f"{iso[:10]} {iso[11:19]}"
    return iso or "-"


def clock(iso: str) -> str:
    """'2025-01-02T03:04:05.678Z' -> '03:04:05'."""
    return iso[11:19] if len(iso) >= 19 and iso[10] == "T" else (iso or "--:--:--")


def services_table(services: Sequence[ServiceSummary], views: dict[str, ServiceView]) -> str:
    """The `ls` table, then a line for each service whose newest revision failed."""
    rows: list[list[object]] = []
    notes = []
    for s in services:
        view = views.get(s.name)
        if view is None:
            rows.append([s.name, "?", "?", "?", "?", "?", s.url])
            continue
        st = view.status
        state = service_state(st)
        newest = state.newest
        rows.append(
            [
                s.name,
                state.word,
                st.revision or "-",
                st.serving_revision or "-",
                newest.status if newest else "-",
                f"{st.count_running}/{st.count_desired}",
                s.url,
            ]
        )
        if newest is not None and newest.failed:
            notes.append(f"{s.name}: {failure_line(state, s.name)}")
    text = table(["NAME", "STATUS", "REVISION", "SERVING", "DEPLOY", "RUNNING", "URL"], rows)
    return text + ("\n\n" + "\n".join(notes) if notes else "")


def failure_line(state: ServiceState, name: str) -> str:
    """'revision 13 failed: <reason>; revision 11 serves' (or 'nothing serves')."""
    newest = state.newest
    assert newest is not None
    reason = f": {in_cli_words(newest.reason, name)}" if newest.reason else ""
    serves = f"revision {state.serving_revision} serves" if state.serving else "nothing serves"
    return f"revision {newest.revision} failed{reason}; {serves}"


def _memory(reservation: int, limit: int) -> str:
    return f"{reservation}-{limit} MB" if reservation or limit else "-"


def _state_lines(view: ServiceView) -> list[str]:
    st = view.status
    state = service_state(st)
    lines = [
        f"Service   {view.name} ({state.word if st.service_status else 'unknown'})",
        f"URL       {view.url or '-'}",
    ]
    if st.revision == 0:
        lines.append(
            f"Revision  none yet: push an image (servicectl push {view.name} DIR --tag T) and "
            f"deploy it (servicectl deploy {view.name} --tag T)"
        )
        return lines
    lines.append(f"Revision  {st.revision} (serving: {st.serving_revision or 'none'})")
    newest = state.newest
    if newest is not None:
        reason = f": {in_cli_words(newest.reason, view.name)}" if newest.reason else ""
        taken_up = st.deployment is not None and st.deployment.revision == newest.revision
        waiting = " (waiting for the deployer)" if newest.status == PENDING and not taken_up else ""
        lines.append(f"Deploy    revision {newest.revision} {newest.status}{reason}{waiting}")
        if newest.failed and state.serving:
            lines.append(
                f"          revision {state.serving_revision} keeps serving "
                f"(servicectl rollback {view.name} makes its definition the newest again)"
            )
    if state.word == NOT_SERVING:
        lines.append("Serving   nothing: requests to the URL fail until a revision deploys")
    return lines


def status_report(view: ServiceView, events: int = 10) -> str:
    st: Status = view.status
    th = st.target_health
    lines = _state_lines(view)
    lines.append(
        f"Tasks     {st.count_desired} desired, {st.count_running} running, "
        f"{st.count_pending} pending, {st.restarts} restarts"
    )
    if th.health_check_path:
        lines.append(
            f"Health    GET {th.health_check_path} every {th.interval} s, "
            f"healthy on {th.status_codes}"
        )
    if st.tasks:
        rows = []
        for t in st.tasks:
            td = t.task_definition
            rows.append(
                [
                    t.task_name,
                    td.revision,
                    task_state(t),
                    t.health,
                    _memory(td.container_memory_reservation, td.container_memory_limit),
                    td.container_port or "-",
                    td.container_image,
                    short_time(t.created_at),
                ]
            )
        lines += [
            "",
            table(["TASK", "REV", "STATUS", "HEALTH", "MEMORY", "PORT", "IMAGE", "CREATED"], rows),
        ]
    if th.targets:
        rows = [[t.target, t.port, t.health, t.description] for t in th.targets]
        lines += ["", table(["TARGET", "PORT", "HEALTH", "DESCRIPTION"], rows)]
    shown = st.events[:events] if events > 0 else []
    if shown:
        lines += ["", f"Last {len(shown)} events (oldest first):"]
        lines += [event_line(e) for e in reversed(shown)]
    return "\n".join(lines)


def task_state(t: Task) -> str:
    return t.last_status + (f" (exit {t.exit_code})" if t.exit_code is not None else "")


def task_line(t: Task) -> str:
    """One task in a scale's progress: 'task 4-1e26dea1 (revision 4) RUNNING, healthy'."""
    health = f", {t.health}" if t.health else ""
    return f"task {t.task_name} (revision {t.task_definition.revision}) {task_state(t)}{health}"


def env_value(value: str, show: bool) -> str:
    """The value as an env file line takes it back (quoted when needed), or masked."""
    if not show:
        n = len(value)
        return f"*** ({n} character{'' if n == 1 else 's'})" if value else "(empty)"
    if value != value.strip() or value[:1] in ("'", '"'):
        return f'"{value}"'  # the env file format removes exactly one pair of quotes
    return value


def env_lines(env: Sequence[EnvVar], show: bool) -> list[str]:
    return [f"{e.name}={env_value(e.value, show)}" for e in env]


def revisions_table(revs: Revisions, serving: int = 0, show_env: bool = False) -> str:
    rows = []
    for r in sorted(revs.revisions, key=lambda r: r.revision):
        marks = []
        if r.revision == revs.revision:
            marks.append("current")
        if serving and r.revision == serving:
            marks.append("serving")
        if r.rolled_back_from is not None:
            marks.append(f"copy of {r.rolled_back_from} (rollback)")
        row: list[object] = [
            r.revision,
            r.container_tag or r.container_image.rsplit(":", 1)[-1],
            _memory(r.container_memory_reservation, r.container_memory_limit),
            r.container_port,
            short_time(r.created_at),
            ", ".join(marks),
        ]
        if show_env:
            row.append(" ".join(f"{e.name}={e.value}" for e in r.environment))
        rows.append(row)
    headers = ["REV", "TAG", "MEMORY", "PORT", "CREATED", "NOTE"]
    if show_env:
        headers.append("ENVIRONMENT")
    return table(headers, rows)


def event_line(event: Event, *, full_time: bool = True) -> str:
    when = short_time(event.created_at) if full_time else clock(event.created_at)
    return f"{when}  {event.type or 'event':<22}  {event.message}"


def log_time(iso: str) -> str:
    """'2025-01-02T03:04:05.678Z' -> '2025-01-02 03:04:05.678' (log lines keep milliseconds)."""
    if len(iso) >= 19 and iso[10] == "T":
        return f"{iso[:10]} {iso[11:]}".removesuffix("Z")
    return iso


def log_line(time: str, source: str, text: str) -> str:
    prefix = f"{log_time(time)} " if time else ""
    return f"{prefix}[{source}] {text}" if source else f"{prefix}{text}"


def merged_log_events(streams: Sequence[LogStream]) -> list[tuple[str, str, LogEvent]]:
    """(time, stream name, line) of several streams, in time order (the API's within one)."""
    tagged = [
        (ev.time, i, j, stream.stream_name, ev)
        for i, stream in enumerate(streams)
        for j, ev in enumerate(stream.log_events)
    ]
    tagged.sort(key=lambda t: (t[0], t[1], t[2]))
    return [(time, name, ev) for time, _, _, name, ev in tagged]


def log_streams(streams: Sequence[LogStream]) -> list[str]:
    """Lines of several streams, merged in time order (the API's order within a stream)."""
    return [log_line(t, name, ev.message) for t, name, ev in merged_log_events(streams)]
