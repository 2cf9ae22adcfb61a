"""The gateway: keeps Caddy's routes equal to the routes recorded on NATS.

Caddy is the data plane and keeps serving when this process (or NATS) is down;
this part only programs it through its admin API.
"""
