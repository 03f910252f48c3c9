"""The service catalogue, hosting requests and their state machine, placement on clusters."""
