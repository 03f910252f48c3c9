"""Metrics for Prometheus: the scrape-time collector, the /metrics server, file_sd targets and alert rules."""
