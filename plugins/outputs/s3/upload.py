"""Putting one object into S3: a single PutObject, or a multipart upload for large bodies.

Multipart (bodies of `multipart_threshold` bytes or more): CreateMultipartUpload,
parts of `part_size` bytes (the last one smaller; a larger part size when the
body would need more than 10,000 parts) uploaded up to `part_concurrency` at a
time, then CompleteMultipartUpload. Any failure aborts the upload (best effort:
a bucket lifecycle rule `AbortIncompleteMultipartUpload` cleans up what an abort
cannot, e.g. after a crash) and raises the error, which the output classifies:
the driver retries the whole object later under the same key.

Errors are not handled here: botocore's exceptions propagate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from collector.log import kv
from collector_plugins.outputs.s3.limits import MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES


@dataclass
class UploadStats:
    objects: int = 0
    multipart_uploads: int = 0
    parts: int = 0
    aborted_uploads: int = 0
    bytes: int = 0  # object bytes stored (compressed)


@dataclass(frozen=True)
class UploadOptions:
    bucket: str
    multipart_threshold: int
    part_size: int
    part_concurrency: int
    extra: dict[str, Any] = field(default_factory=dict)  # StorageClass, ServerSideEncryption, SSEKMSKeyId


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """(start, end) of each part: `part_size` bytes each, the last smaller; never more than S3's part count."""
    part_size = max(part_size, MIN_PART_BYTES.value, -(-size // MAX_PARTS.value))
    if part_size > MAX_PART_BYTES.value:
        raise ValueError(f"{size} bytes need parts larger than S3's {MAX_PART_BYTES.value}")
    return [(start, min(start + part_size, size)) for start in range(0, size, part_size)] or [(0, 0)]


class Uploader:
    """Stores bodies under keys in one bucket; `client` returns the (reused) aiobotocore S3 client."""

    def __init__(
        self, client: Callable[[], Awaitable[Any]], options: UploadOptions, log: logging.Logger, component: str
    ) -> None:
        self._client = client
        self.options = options
        self.stats = UploadStats()
        self._log = log
        self._component = component

    async def put(self, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> None:
        """Store `body` under `key` (replacing any object there); raises botocore errors."""
        client = await self._client()
        opts = self.options
        common = {"Bucket": opts.bucket, "Key": key, "ContentType": content_type, "Metadata": metadata, **opts.extra}
        if len(body) < opts.multipart_threshold:
            await client.put_object(Body=body, **common)
        else:
            await self._multipart(client, key, body, common)
        self.stats.objects += 1
        self.stats.bytes += len(body)

    async def _multipart(self, client: Any, key: str, body: bytes, common: dict[str, Any]) -> None:
        opts = self.options
        ranges = part_ranges(len(body), opts.part_size)
        created = await client.create_multipart_upload(**common)
        upload_id = created["UploadId"]
        self.stats.multipart_uploads += 1
        slots = asyncio.Semaphore(opts.part_concurrency)

        async def upload(number: int, start: int, end: int) -> dict[str, Any]:
            async with slots:
                answer = await client.upload_part(
                    Bucket=opts.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body[start:end]
                )
                self.stats.parts += 1
                return {"PartNumber": number, "ETag": answer["ETag"]}

        tasks = [asyncio.ensure_future(upload(n, s, e)) for n, (s, e) in enumerate(ranges, start=1)]
        try:
            parts = await asyncio.gather(*tasks)
            await client.complete_multipart_upload(
                Bucket=opts.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
            )
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Shielded: a cancelled send (shutdown) still tells S3 to drop the parts it holds.
            await asyncio.shield(self._abort(client, key, upload_id))
            raise

    async def _abort(self, client: Any, key: str, upload_id: str) -> None:
        self.stats.aborted_uploads += 1
        try:
            await client.abort_multipart_upload(Bucket=self.options.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # the upload's own error is what matters; a lifecycle rule cleans this up
            self._log.warning(
                "could not abort a failed multipart upload; its parts stay until a lifecycle rule removes them",
                extra=kv(component=self._component, key=key, error=f"{type(exc).__name__}: {exc}"),
            )
