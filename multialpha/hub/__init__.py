"""The data hub: Databento Live trades -> exact 1-minute bars -> Redis.

See docs/hub.md. Modules: resolver (instrument -> front-month root),
aggregator (bars), publisher (Redis), session (the Live connection),
control (control channel), main (wiring, ``run``).
"""
