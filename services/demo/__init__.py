"""``dsr demo``: sample systems, one request of every kind, and a check of the outcome."""
