"""``make run``: the local end-to-end run of the whole system, told as a story."""
