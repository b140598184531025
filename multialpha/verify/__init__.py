"""`multialpha verify`: a trading day's live decisions against a replay of its bar logs (docs/verify.md)."""
