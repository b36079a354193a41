"""`alerts`: the notifications of `alert` outputs as log records (input.py)."""
