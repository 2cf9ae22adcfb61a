"""The front door: HTTP API, auth, validation, registry token endpoint, websocket tails.

Talks to NATS only, never to Docker.
"""
