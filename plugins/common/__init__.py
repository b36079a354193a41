"""Code shared by several plugins (line formats, the AWS layer)."""
