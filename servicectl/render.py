"""Text for people: tables, the status report, revisions, event and log lines. Pure, no I/O.

Every function takes decoded API answers and returns strings; the CLI prints
them. Timestamps are shown as the API sends them (UTC, ISO 8601), shortened
to the second.
"""

from __future__ import annotations

from collections.abc import Sequence

from servicectl.models import (
    Event,
    LogStream,
    Revisions,
    ServiceSummary,
    ServiceView,
    Status,
)


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
    rows = []
    for s in services:
        view = views.get(s.name)
        st = view.status if view else None
        rows.append(
            [
                s.name,
                st.service_status if st else "?",
                (st.revision or "-") if st else "?",
                f"{st.count_running}/{st.count_desired}" if st else "?",
                s.url,
            ]
        )
    return table(["NAME", "STATUS", "REVISION", "RUNNING", "URL"], rows)


def _memory(reservation: int, limit: int) -> str:
    return f"{reservation}-{limit} MB" if reservation or limit else "-"


def status_report(view: ServiceView, events: int = 10) -> str:
    st: Status = view.status
    th = st.target_health
    lines = [
        f"Service   {view.name} ({st.service_status or 'unknown'})",
        f"URL       {view.url or '-'}",
    ]
    if st.revision == 0:
        lines.append(
            "Revision  none yet: push an image (servicectl push) and deploy it (servicectl deploy)"
        )
    else:
        serving = st.serving_revision or "none"
        lines.append(f"Revision  {st.revision} (serving: {serving})")
    if st.deployment is not None:
        d = st.deployment
        reason = f": {d.reason}" if d.reason else ""
        lines.append(f"Deploy    revision {d.revision} {d.status}{reason}")
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
            state = t.last_status
            if t.exit_code is not None:
                state += f" (exit {t.exit_code})"
            rows.append(
                [
                    t.task_name,
                    td.revision,
                    state,
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


def log_streams(streams: Sequence[LogStream]) -> list[str]:
    """Lines of several streams, merged in time order (the API's order within a stream)."""
    tagged = [
        (ev.time, i, j, stream.stream_name, ev.message)
        for i, stream in enumerate(streams)
        for j, ev in enumerate(stream.log_events)
    ]
    tagged.sort(key=lambda t: (t[0], t[1], t[2]))
    return [log_line(time, name, message) for time, _, _, name, message in tagged]
