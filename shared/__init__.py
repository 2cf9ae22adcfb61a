"""Code shared by two or more platform parts: wire types, names, rules, settings, NATS setup.

Nothing here imports `services.*` or the user-facing `servicectl` package.
"""
