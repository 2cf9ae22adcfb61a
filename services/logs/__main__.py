"""Run the log collector: `python -m services.logs` (settings from SERVICECTL_* variables)."""

from services.logs.collector import run
from shared.runner import main

if __name__ == "__main__":
    main("logs", run)
