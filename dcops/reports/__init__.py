"""Reports: availability (SLA) and capacity maths, the queries that feed them, and their rendering."""
