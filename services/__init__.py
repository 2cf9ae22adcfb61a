"""The platform's processes: api, deployer, logs collector, gateway.

They talk only through NATS and never import each other.
"""
