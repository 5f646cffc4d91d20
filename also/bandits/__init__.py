"""Layer 1: strategy spaces, the reward surrogate, every strategy-selection method (bandits and prompt optimizers) and their call budgets. Imports only `also.core`."""
