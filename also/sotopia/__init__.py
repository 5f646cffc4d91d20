"""Layer 3: Sotopia: the shipped data, per-turn rewards, deadlock and strategy-following judges, the agents and the episode loop (Algorithm 1). Imports only layers 0-2."""
