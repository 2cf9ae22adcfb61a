"""Run the deployer: `python -m services.deployer` (settings from SERVICECTL_* variables)."""

from services.deployer.worker import run
from shared.runner import main

if __name__ == "__main__":
    main("deployer", run)
