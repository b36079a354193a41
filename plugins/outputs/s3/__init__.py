"""The `s3` output; its options and examples are in README.md.

- `output`: `s3`: records to Amazon S3 as partitioned, compressed objects, ready for Athena.
- `athena`: `collector athena-ddl OUTPUT`: the Athena table over what an `s3` output writes, exactly as it lays it
  out.
- `encoding`: Object bodies of the `s3` output: JSON lines (gzip, zstd or plain) or Parquet.
- `keys`: Object keys of the `s3` output: a partitioned prefix per record, a name per request.
- `limits`: Amazon S3 limits the `s3` output works within: the one place it takes them from.
- `upload`: Putting one object into S3: a single PutObject, or a multipart upload for large bodies.
"""
