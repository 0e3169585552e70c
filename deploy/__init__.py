"""What a user runs against a real workspace: runs/submit payloads, rendered and validated."""
