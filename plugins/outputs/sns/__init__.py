"""`sns`: notifications (or any log record) published to an Amazon SNS topic (output.py; limits.py)."""
