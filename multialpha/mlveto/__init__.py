"""ML veto: per-symbol models that may block a strategy's entry.

- :mod:`manifest` — ``models/manifest.json``: what may be loaded (SHA-256,
  feature order, threshold, training range, library versions).
- :mod:`loader` — verify a file against the manifest *before* unpickling it.
- :mod:`linear` — the shipped model format: a logistic regression scored with
  numpy alone (training exports scikit-learn's fitted numbers into it).
- :mod:`gate` — decide allow/veto for one entry signal, per config mode.
- :mod:`record` — write every decision where status and analysis read it.
"""
