"""Run the gateway's DNS responder: `python -m services.gateway.dns`."""

from services.gateway.dns.server import run
from shared.runner import main

if __name__ == "__main__":
    main("dns", run)
