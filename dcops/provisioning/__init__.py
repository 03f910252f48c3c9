"""Provisioning: running the playbooks through ansible-runner, and the jobs that record each run."""
