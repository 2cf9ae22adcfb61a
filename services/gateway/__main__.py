"""Run the gateway: `python -m services.gateway` (settings from SERVICECTL_* variables)."""

from services.gateway.worker import run
from shared.runner import main

if __name__ == "__main__":
    main("gateway", run)
