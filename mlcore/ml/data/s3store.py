"""A dataset version in an S3(-compatible) bucket.

S3 has no locks, so the manifest is updated by compare-and-swap: read it with its ETag, write
the new one with ``If-Match`` (or ``If-None-Match: *`` when there is none yet) and retry when
another writer got there first. AWS S3, MinIO and moto support these conditional writes.
"""

from __future__ import annotations

import random
import time
from typing import Any

from mlcore.ml.data.manifest import rows_from_csv, rows_to_csv
from mlcore.ml.data.store import MANIFEST_NAME, DatasetStore, ManifestUpdate, T

_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3DatasetStore(DatasetStore):
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        client: Any = None,
        endpoint_url: str | None = None,
        max_manifest_attempts: int = 20,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._endpoint_url = endpoint_url
        self._max_attempts = max_manifest_attempts
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def __repr__(self) -> str:
        return f"S3DatasetStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # optional dependency (extra "s3"): only needed for S3 stores

            # own session: boto3's default session is not safe to create clients from threads
            session = boto3.session.Session()
            self._client = session.client("s3", endpoint_url=self._endpoint_url)
        return self._client

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _get(self, rel: str) -> tuple[bytes, str]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))
        except Exception as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise FileNotFoundError(f"{self.uri}/{rel}") from None
            raise
        return resp["Body"].read(), resp["ETag"]

    def _read(self, rel: str) -> bytes:
        return self._get(rel)[0]

    def _write(self, rel: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(rel), Body=data, ContentType=_content_type(rel)
        )

    def _update_manifest(self, update: ManifestUpdate[T]) -> T:
        for attempt in range(self._max_attempts):
            try:
                data, etag = self._get(MANIFEST_NAME)
                condition = {"IfMatch": etag}
                rows = rows_from_csv(data)
            except FileNotFoundError:
                condition, rows = {"IfNoneMatch": "*"}, []
            new_rows, result = update(rows)
            if new_rows is None:
                return result
            body = rows_to_csv(new_rows)
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(MANIFEST_NAME),
                    Body=body,
                    ContentType="text/csv",
                    **condition,
                )
                return result
            except Exception as exc:
                if _error_code(exc) not in _CONFLICT_CODES:
                    raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise RuntimeError(
            f"{self.uri}: manifest kept changing under {self._max_attempts} attempts to update it"
        )


def _content_type(rel: str) -> str:
    suffix = rel.rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "csv": "text/csv", "json": "application/json"}.get(
        suffix, "application/octet-stream"
    )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
