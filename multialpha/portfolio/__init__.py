"""The shared portfolio: cross-strategy limits enforced atomically in Redis."""
