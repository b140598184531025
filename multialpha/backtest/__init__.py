"""`multialpha backtest`: the live worker's code on historical bars and a simulated clock."""
