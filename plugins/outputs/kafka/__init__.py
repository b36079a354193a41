"""`kafka` output: records to Apache Kafka (or any broker speaking its protocol) with aiokafka.

- `output.py`: the config model and `KafkaOutput` (one producer per instance, per-record acknowledgements);
- `errors.py`: aiokafka's errors read as RETRY or DROP;
- `security.py`: TLS, SASL (PLAIN, SCRAM) and AWS MSK IAM (OAUTHBEARER) options turned into producer settings;
- `limits.py`: the broker's default message size limit, with its source.
"""
