"""The `syslog` input; its options and examples are in README.md.

- `input`: `syslog` input: RFC 5424 and RFC 3164 messages over UDP, TCP and unix sockets.
- `parser`: Parsing syslog messages: RFC 5424 and RFC 3164 (BSD), detected per message.
"""
