"""The deployer: runs services' containers on its Docker host, as desired state says.

Pure decisions live in `plan` and `status`; `docker_host` is the only module
that talks to Docker, `executor` carries out plans, `worker` schedules rounds.
"""
