"""Layer 4: simulated worlds with known answers: the synthetic bandit benchmark and the planted Sotopia world. Imports only layers 0-3."""
