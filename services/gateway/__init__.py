"""The gateway: keeps HAProxy's routes equal to the routes recorded on NATS.

HAProxy is the data plane and keeps serving when this process (or NATS) is
down; this part only programs it, through its runtime API (`haproxy_api`, the
one module that speaks to its sockets), with commands planned by the pure
`plan` module, and keeps its files (`haproxy_config`) ready for a restart.
"""
