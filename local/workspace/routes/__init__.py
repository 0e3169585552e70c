"""The HTTP routes of the local workspace, one module per API it answers."""
