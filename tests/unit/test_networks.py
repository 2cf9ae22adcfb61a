"""Subnets of the project networks, from the platform's pool."""

from __future__ import annotations

from services.deployer.networks import free_subnet


def test_the_first_free_subnet_of_the_pool() -> None:
    assert free_subnet("10.213.0.0/16", 24, []) == "10.213.0.0/24"
    assert free_subnet("10.213.0.0/16", 24, ["10.213.0.0/24", "172.17.0.0/16"]) == "10.213.1.0/24"
    # a wider network elsewhere on the engine overlapping the pool is skipped
    assert free_subnet("10.213.0.0/16", 24, ["10.213.0.0/23"]) == "10.213.2.0/24"
    assert free_subnet("10.213.0.0/30", 31, ["10.213.0.0/31", "10.213.0.2/31"]) is None
    assert free_subnet("10.213.0.0/24", 25, ["fd00::/64", "garbage"]) == "10.213.0.0/25"
