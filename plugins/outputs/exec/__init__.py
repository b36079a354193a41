"""`exec`: runs a command per notification, the notification as JSON on its stdin (output.py)."""
