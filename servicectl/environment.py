"""`servicectl env`: the environment of the revision changes build on, and `env set/unset`.

`env NAME` lists the user's variables of the base revision (the serving one,
unless the newest has not failed: see `definitions.choose_base`), values
masked unless asked for; the variables the platform injects (CONTEXT_ROOT,
PORT) are not the user's and are left out. `env set` and `env unset` are
deploys that change only the environment, so they follow the deploy and exit
like `servicectl deploy`.
"""

from __future__ import annotations

from collections.abc import Sequence

from servicectl import jsonout, render
from servicectl.context import Context
from servicectl.definitions import Changes, choose_base, user_environment
from servicectl.deploying import deploy, service_or_hint


async def env_list(ctx: Context, name: str, *, show: bool, as_json: bool) -> int:
    async with ctx.client() as client:
        view = await service_or_hint(client, name)
        base = choose_base(await client.revisions(name), view.status)
    rev = base.revision
    env = user_environment(rev, view.context_root) if rev is not None else []
    if as_json:
        ctx.say(jsonout.document(jsonout.env_record(name, rev, env, show, base.serving)))
        return 0
    for text in render.env_lines(env, show):
        ctx.say(text)
    if rev is None:
        ctx.progress(
            f"({name} has not been deployed yet: `servicectl env set {name} NAME=VALUE` "
            "makes its first revision)"
        )
        return 0
    which = "serving revision" if base.serving else "revision"
    if env:
        count = f"{len(env)} variable{'' if len(env) == 1 else 's'}"
        what = count + ("" if show else "; values hidden, --show prints them")
    else:
        what = f"no variables of its own; set one with `servicectl env set {name} NAME=VALUE`"
    ctx.progress(f"({which} {rev.revision}: {what}; CONTEXT_ROOT and PORT are set by the platform)")
    return 0


async def env_set(
    ctx: Context,
    name: str,
    pairs: Sequence[tuple[str, str]],
    *,
    detach: bool,
    timeout: float,
    as_json: bool,
) -> int:
    """A new revision from the base one with these variables set (the last of a name wins)."""
    env = dict(pairs)
    return await deploy(
        ctx,
        name,
        Changes(env=env),
        detach=detach,
        timeout=timeout,
        as_json=as_json,
        env_sources={n: n for n in env},
    )


async def env_unset(
    ctx: Context,
    name: str,
    variables: Sequence[str],
    *,
    detach: bool,
    timeout: float,
    as_json: bool,
) -> int:
    """A new revision from the base one without these variables (refused if none is set)."""
    return await deploy(
        ctx,
        name,
        Changes(unset=tuple(dict.fromkeys(variables))),
        detach=detach,
        timeout=timeout,
        as_json=as_json,
        only_unset=True,
    )
