"""Order delivery: intents, the outbox journal, sinks (paper, TradersPost)."""
