"""The whole platform on a Docker Swarm made of the project's own test cluster.

`MultiStack` is a `Stack` whose deployer drives the cluster's manager
(SERVICECTL_ENGINE=swarm) and which runs one log collector per node, each
on its node's engine. The nodes reach the platform at the cluster's hub
address (10.251.0.2, the root namespace's side of the cluster's own
network): the registry listens there too (and on loopback, where the test's
own `docker push` goes, since the machine's engine may only push to a
loopback registry without TLS), and the registry's token realm is the api at
that address.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.client import Api
from tests.deploying import docker, docker_login
from tests.stack import Proc, Stack, _logged_since_start


class MultiStack(Stack):
    def __init__(
        self, base: Path, cluster: Any, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.cluster = cluster
        hub = cluster.hub_address

        def env(ports: dict[str, int]) -> dict[str, str]:
            return {
                "SERVICECTL_ENGINE": "swarm",
                "SERVICECTL_DOCKER_URL": cluster.manager.docker_url,
                "SERVICECTL_REGISTRY_ADDR": f"{hub}:{ports['registry']}",
                "SERVICECTL_REGISTRY_LISTEN": f"0.0.0.0:{ports['registry']}",
                "SERVICECTL_API_HOST": "0.0.0.0",
                "SERVICECTL_API_PUBLIC_URL": f"http://{hub}:{ports['api']}",
                # nodes' tasks reach nothing of the root namespace's loopback anyway
                "SERVICECTL_TASK_FIREWALL": "0",
                "SERVICECTL_DEPLOY_DEADLINE": "30",
                **(extra_env or {}),
            }

        super().__init__(base, env)
        py = sys.executable
        logs = self.base / "logs"
        # the stack's own collector follows the manager (node 1); one more per other node
        for node in cluster.nodes[1:]:
            name = f"logs-{node.name}"
            node_env = {**self.env, "SERVICECTL_DOCKER_URL": node.docker_url}
            self.procs[name] = Proc(
                name, [py, "-m", "services.logs"], node_env, logs / f"{name}.log", lambda: True
            )
            self.procs[name].ready = _logged_since_start(self.procs, name, " ready")

    @property
    def components(self) -> tuple[str, ...]:
        return (*Stack.COMPONENTS, *(f"logs-{n.name}" for n in self.cluster.nodes[1:]))

    @property
    def loopback_registry(self) -> str:
        return f"127.0.0.1:{self.ports['registry']}"

    def push(self, api: Api, service: str, image: str, tag: str, config: Path) -> str:
        """Push `image` as `<service>:<tag>` with the service's credentials, through loopback."""
        creds = api.get(f"/services/{service}", params={"view": "docker"}).json()
        local = {**creds, "proxy_endpoint": f"http://{self.loopback_registry}"}
        r = docker_login(config, local)
        assert r.returncode == 0, r.stderr
        repo = creds["repo_uri"].split("/", 1)[1]
        target = f"{self.loopback_registry}/{repo}:{tag}"
        assert docker(config, "tag", image, target).returncode == 0
        r = docker(config, "push", target)
        assert r.returncode == 0, r.stderr
        return target
