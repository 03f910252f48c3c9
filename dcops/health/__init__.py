"""Health: checks from the inventory, the async prober, flap damping and the compact probe history."""
