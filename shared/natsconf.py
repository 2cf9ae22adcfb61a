"""Who may do what on NATS: identities, their permissions, and the nats-server configuration. Pure.

Accounts (see docs/SECURITY.md):
- `PLATFORM` holds JetStream (every stream and bucket) and the platform's own
  identities, each a static user with only the subjects it needs and a private
  reply-inbox prefix (`_INBOX_<identity>`);
- `SYS` (the server's system account) and `AUTH` (the auth callout) have one
  user each, both used by the api;
- one account per project, `P_<project>`, where end users land: it imports
  its project's events and logs (live), direct gets of their stored messages
  and pulls from consumers the api makes for each session. End users never
  share an account with the streams: a JetStream request's reply subject is
  not permission-checked, so in the streams' account any request could write
  into any stream (measured: ../shared notes, nats-tenants).
End users authenticate with their session token through the auth callout
(`services/api/nats_callout.py`), which gives them `user_permissions`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared import names

ACCOUNT_PLATFORM = "PLATFORM"
ACCOUNT_SYS = "SYS"
ACCOUNT_AUTH = "AUTH"

# identities of the platform's processes (static users)
API, DEPLOYER, LOGS, GATEWAY, OPERATOR = "api", "deployer", "logs", "gateway", "operator"
CALLOUT, SYSTEM = "callout", "sys"
PLATFORM_IDENTITIES = (API, DEPLOYER, LOGS, GATEWAY, OPERATOR)
ALL_IDENTITIES = (*PLATFORM_IDENTITIES, CALLOUT, SYSTEM)

_STREAM_PREFIX = {
    names.STREAM_EVENTS: "servicectl.events",
    names.STREAM_LOGS: "servicectl.logs",
}


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def as_config(self) -> dict[str, dict[str, list[str]]]:
        # an empty allow list would mean "everything": deny all instead
        return {
            "publish": {"allow": list(self.publish)} if self.publish else {"deny": [">"]},
            "subscribe": {"allow": list(self.subscribe)} if self.subscribe else {"deny": [">"]},
        }


def inbox_prefix(identity: str) -> str:
    """The reply-inbox prefix a platform identity must connect with."""
    return f"_INBOX_{identity}"


def project_account(project: str) -> str:
    return f"P_{project}"


def session_id(token: str) -> str:
    """A session's id on NATS, from its token: its inbox prefix and its consumers' name.

    Only the token's holder (and the api) can compute it, and it is not the
    digest the tokens bucket is keyed by."""
    return hashlib.sha256(b"servicectl-inbox:" + token.encode()).hexdigest()[:32]


def session_inbox(token: str) -> str:
    return f"_INBOX_{session_id(token)}"


# ------------------------------------------------------------------ building blocks
def _kv(bucket: str, *, write: bool) -> list[str]:
    stream = names.kv_stream(bucket)
    read = [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        # watching: nats-py creates an ordered push consumer per watch
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]
    return [*read, names.kv_subject(bucket, ">")] if write else read


def _read_stream(stream: str) -> list[str]:
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
    ]


def _purge(stream: str) -> list[str]:
    return [f"$JS.API.STREAM.PURGE.{stream}"]


_MANAGE = [
    "$JS.API.INFO",
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.INFO.>",
    "$JS.API.STREAM.NAMES",
]

ALL_BUCKETS = (
    names.BUCKET_USERS,
    names.BUCKET_TOKENS,
    names.BUCKET_SERVICES,
    names.BUCKET_REVISIONS,
    names.BUCKET_STATUS,
    names.BUCKET_ROUTES,
    names.BUCKET_GATEWAY,
    names.BUCKET_REGISTRY_CREDS,
    names.BUCKET_LOG_CURSORS,
    names.BUCKET_PATHS,
    names.BUCKET_NODES,
)


def _perms(identity: str, publish: Iterable[str], subscribe: Iterable[str] = ()) -> Permissions:
    return Permissions(
        publish=tuple(dict.fromkeys(publish)),
        subscribe=(f"{inbox_prefix(identity)}.>", *dict.fromkeys(subscribe)),
    )


# bucket -> may write, for each platform identity that uses buckets
BUCKET_ACCESS: dict[str, dict[str, bool]] = {
    API: {
        **{bucket: True for bucket in ALL_BUCKETS if bucket != names.BUCKET_LOG_CURSORS},
        names.BUCKET_NODES: False,
    },
    DEPLOYER: {
        names.BUCKET_STATUS: True,
        names.BUCKET_ROUTES: True,
        names.BUCKET_GATEWAY: True,
        names.BUCKET_SERVICES: False,
        names.BUCKET_REVISIONS: False,
        names.BUCKET_LOG_CURSORS: False,
        names.BUCKET_NODES: True,
    },
    LOGS: {names.BUCKET_LOG_CURSORS: True},
    GATEWAY: {names.BUCKET_ROUTES: False, names.BUCKET_GATEWAY: True},
    OPERATOR: {bucket: True for bucket in ALL_BUCKETS},
}


def buckets_of(identity: str) -> dict[str, bool]:
    """The buckets an identity uses (and whether it may write them)."""
    return BUCKET_ACCESS.get(identity, {})


def _buckets(identity: str) -> list[str]:
    return [x for bucket, write in buckets_of(identity).items() for x in _kv(bucket, write=write)]


def platform_permissions() -> dict[str, Permissions]:
    """What each platform process may publish and subscribe to (PLATFORM account)."""
    b = names
    # the consumers of end users' sessions, filtered to their project
    session_consumers = [
        f"$JS.API.CONSUMER.CREATE.{stream}.*.{prefix}.>"
        for stream, prefix in _STREAM_PREFIX.items()
    ] + [f"$JS.API.CONSUMER.DELETE.{stream}.*" for stream in _STREAM_PREFIX]
    return {
        API: _perms(
            API,
            [
                *_MANAGE,
                *_buckets(API),
                names.EVENTS_ALL,
                *_read_stream(b.STREAM_EVENTS),
                *_read_stream(b.STREAM_LOGS),
                *_purge(b.STREAM_EVENTS),
                *_purge(b.STREAM_LOGS),
                *session_consumers,
            ],
            [names.EVENTS_ALL, names.LOGS_ALL, names.kv_changes(b.BUCKET_TOKENS)],
        ),
        DEPLOYER: _perms(DEPLOYER, [*_buckets(DEPLOYER), names.EVENTS_ALL]),
        LOGS: _perms(
            LOGS,
            [*_buckets(LOGS), names.LOGS_ALL, *_read_stream(b.STREAM_LOGS), *_purge(b.STREAM_LOGS)],
        ),
        GATEWAY: _perms(GATEWAY, _buckets(GATEWAY)),
        # operators' own tools (servicectl-admin) and tests: all of the platform's account
        OPERATOR: Permissions(publish=(">",), subscribe=(">",)),
    }


def user_permissions(project: str, token: str) -> Permissions:
    """An end user's permissions, in their project's account (given by the auth callout)."""
    sid = session_id(token)
    publish = []
    for stream, prefix in _STREAM_PREFIX.items():
        publish.append(f"$JS.API.DIRECT.GET.{stream}.{prefix}.{project}.>")
        publish.append(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{sid}")
    subscribe = [
        names.events_of_project(project),
        names.logs_of_project(project),
        f"{session_inbox(token)}.>",
    ]
    return Permissions(publish=tuple(publish), subscribe=tuple(subscribe))


def session_consumer_filters(project: str) -> dict[str, str]:
    """stream -> the filter of a session's consumer on it."""
    return {stream: f"{prefix}.{project}.>" for stream, prefix in _STREAM_PREFIX.items()}


# ------------------------------------------------------------------ the server's configuration
@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    store_dir: str
    pid_file: str
    passwords: Mapping[str, str]  # identity -> password
    callout_issuer: str  # public account nkey ("A...") that signs user JWTs
    projects: tuple[str, ...] = ()
    monitor_port: int = 0
    server_name: str = "servicectl"
    extra: Mapping[str, str] = field(default_factory=dict)


def _q(value: str) -> str:
    return json.dumps(value)


def _user(identity: str, password: str, perms: Permissions | None) -> str:
    out = f"{{user: {_q(identity)}, password: {_q(password)}"
    if perms is not None:
        out += f", permissions: {json.dumps(perms.as_config())}"
    return out + "}"


def _project_exports(project: str) -> list[str]:
    acc = _q(project_account(project))
    out = [
        f"{{stream: {_q(names.events_of_project(project))}, accounts: [{acc}]}}",
        f"{{stream: {_q(names.logs_of_project(project))}, accounts: [{acc}]}}",
    ]
    for stream, prefix in _STREAM_PREFIX.items():
        subject = f"$JS.API.DIRECT.GET.{stream}.{prefix}.{project}.>"
        out.append(f"{{service: {_q(subject)}, accounts: [{acc}]}}")
    return out


def _project_imports(project: str) -> list[str]:
    src = _q(ACCOUNT_PLATFORM)
    out = [
        f"{{stream: {{account: {src}, subject: {_q(names.events_of_project(project))}}}}}",
        f"{{stream: {{account: {src}, subject: {_q(names.logs_of_project(project))}}}}}",
    ]
    for stream, prefix in _STREAM_PREFIX.items():
        subject = f"$JS.API.DIRECT.GET.{stream}.{prefix}.{project}.>"
        out.append(f"{{service: {{account: {src}, subject: {_q(subject)}}}}}")
        pull = _q(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*")
        out.append(f"{{service: {{account: {src}, subject: {pull}}}}}")
    return out


def render(cfg: ServerConfig) -> str:
    """The whole nats-server configuration file."""
    perms = platform_permissions()
    platform_users = ",\n      ".join(
        _user(identity, cfg.passwords[identity], perms[identity])
        for identity in PLATFORM_IDENTITIES
    )
    exports = [e for p in cfg.projects for e in _project_exports(p)]
    if cfg.projects:
        everyone = ", ".join(_q(project_account(p)) for p in cfg.projects)
        for stream in _STREAM_PREFIX:
            subject = _q(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*")
            # `response_type: stream`: a fetch of N messages gets N answers, not one
            exports.append(f"{{service: {subject}, response_type: stream, accounts: [{everyone}]}}")
    project_accounts = "\n".join(
        f"  {_q(project_account(p))}: {{ imports: [\n    "
        + ",\n    ".join(_project_imports(p))
        + "\n  ] }"
        for p in cfg.projects
    )
    monitor = f"http: 127.0.0.1:{cfg.monitor_port}\n" if cfg.monitor_port else ""
    export_lines = ",\n      ".join(exports)
    auth_users = ", ".join(_q(i) for i in ALL_IDENTITIES)
    return f"""# written by servicectl (shared/natsconf.py); edits are overwritten
server_name: {_q(cfg.server_name)}
listen: {_q(f"{cfg.host}:{cfg.port}")}
{monitor}pid_file: {_q(cfg.pid_file)}
jetstream {{ store_dir: {_q(cfg.store_dir)} }}
accounts {{
  {ACCOUNT_SYS}: {{ users: [ {_user(SYSTEM, cfg.passwords[SYSTEM], None)} ] }}
  {ACCOUNT_AUTH}: {{ users: [ {_user(CALLOUT, cfg.passwords[CALLOUT], None)} ] }}
  {ACCOUNT_PLATFORM}: {{
    jetstream: enabled
    users: [
      {platform_users}
    ]
    exports: [
      {export_lines}
    ]
  }}
{project_accounts}
}}
system_account: {ACCOUNT_SYS}
authorization {{
  auth_callout {{
    issuer: {_q(cfg.callout_issuer)}
    account: {ACCOUNT_AUTH}
    auth_users: [ {auth_users} ]
  }}
}}
"""
