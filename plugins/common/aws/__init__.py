"""The AWS layer every AWS plugin shares: sessions and clients, credentials, limits, error classification.

- `settings.AwsSettings`: the connection options, mixed into a plugin's config model;
- `session.AwsClients`: one aiobotocore session per component, one reused client per service;
- `errors.classify_aws_error`: retry or dead-letter, with the missing IAM permission logged once;
- `metadata`: host facts from instance metadata (IMDSv2), only when a template asks for them.
"""
