"""Schemas, table contracts, Volume paths and the argument handling every job shares."""
