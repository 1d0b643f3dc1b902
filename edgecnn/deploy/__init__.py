"""Deployment decisions: budgets (latency, size, accuracy) checked on a bundle (`edgecnn check`) and the search for
the best deployment under them (`edgecnn optimize`)."""
