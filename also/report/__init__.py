"""Layer 6: results and reports: metrics, the results format and export, tables and figures, recovery of planted truths, `also reproduce`. Imports only layers 0-5."""
