"""The gateway's DNS responder: tells Caddy where each service's tasks listen.

Caddy's config never changes after start (a reload closes idle keep-alive
connections, and clients that reuse one at that instant see an error). Instead,
Caddy looks up SRV records `<project>-<service>.svc.servicectl.` here (cached
briefly) and dials the targets, resolving `localhost.` here too. Answers come
from a routes file the gateway writes; this process needs neither NATS nor the
gateway to keep answering.
"""
