"""Run the api: `python -m services.api` (settings from SERVICECTL_* variables)."""

from services.api.app import run
from shared.runner import main

if __name__ == "__main__":
    main("api", run)
