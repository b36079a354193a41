"""The AWS layer every AWS plugin shares: sessions and clients, credentials, limits, error classification."""
