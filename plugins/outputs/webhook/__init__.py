"""`webhook`: notifications as JSON, Slack or Teams bodies over HTTP (output.py; limits.py)."""
