"""Registry HTTP API adapter: is it up, and delete every tag of a repository.

The api signs itself a short token with `pull` and `delete` on the one
repository it acts on. Manifest digests are read with an Accept header listing
every manifest type; without it the registry reports a different digest.
"""

from __future__ import annotations

import time

import aiohttp

from services.api.registry_tokens import Scope, TokenSigner

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


class RegistryUnavailable(Exception):
    """The registry did not answer as expected."""


class RegistryClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, signer: TokenSigner):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.signer = signer

    def _headers(self, repo: str, accept: str | None = None) -> dict[str, str]:
        token = self.signer.sign(
            "platform.api",
            [Scope("repository", repo, frozenset({"pull", "delete"}))],
            int(time.time()),
        )
        headers = {"Authorization": f"Bearer {token}"}
        if accept:
            headers["Accept"] = accept
        return headers

    async def ping(self) -> None:
        try:
            async with self.session.get(
                f"{self.base_url}/v2/", timeout=aiohttp.ClientTimeout(total=3)
            ) as resp:
                if resp.status not in (200, 401):
                    raise RegistryUnavailable(f"registry answered {resp.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise RegistryUnavailable(f"registry unreachable: {err}") from err

    async def tags(self, repo: str) -> list[str]:
        try:
            async with self.session.get(
                f"{self.base_url}/v2/{repo}/tags/list",
                headers=self._headers(repo),
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                if resp.status == 404:
                    return []
                if resp.status != 200:
                    raise RegistryUnavailable(f"listing tags of {repo}: {resp.status}")
                body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as err:
            raise RegistryUnavailable(f"listing tags of {repo}: {err}") from err
        return list(body.get("tags") or [])

    async def delete_repository(self, repo: str) -> int:
        """Delete the manifest of every tag; returns how many were deleted."""
        deleted = 0
        for tag in await self.tags(repo):
            try:
                async with self.session.head(
                    f"{self.base_url}/v2/{repo}/manifests/{tag}",
                    headers=self._headers(repo, MANIFEST_TYPES),
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    if resp.status == 404:
                        continue
                    digest = resp.headers.get("Docker-Content-Digest")
                    if resp.status != 200 or not digest:
                        raise RegistryUnavailable(f"reading digest of {repo}:{tag}: {resp.status}")
                async with self.session.delete(
                    f"{self.base_url}/v2/{repo}/manifests/{digest}",
                    headers=self._headers(repo),
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    if resp.status not in (202, 404):
                        raise RegistryUnavailable(f"deleting {repo}:{tag}: {resp.status}")
                    deleted += resp.status == 202
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                raise RegistryUnavailable(f"deleting {repo}:{tag}: {err}") from err
        return deleted
