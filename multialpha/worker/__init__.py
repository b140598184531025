"""The strategy worker: one strategy's Cerebro fed live from Redis (see docs/worker.md).

Submodules import Backtrader/redis; import them where needed, not here.
"""
