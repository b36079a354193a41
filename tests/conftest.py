from __future__ import annotations

import os

# No test may reach instance metadata or a real AWS account.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_EMF_ENVIRONMENT", "Local")
