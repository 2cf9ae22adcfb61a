"""Launchers and configuration for running the platform: keys, registry, Caddy, supervisord."""
