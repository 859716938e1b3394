"""Events for the host app: what changed for a customer, signed and delivered to its endpoints."""
