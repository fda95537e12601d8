"""The S3 connector: a subject's objects in one bucket, found by key patterns.

- **disclosure** lists every object under the subject's prefixes: key, size,
  last-modified time, content type, and the content itself for JSON and text
  objects up to ``max_content_bytes`` (see ``connectors.s3.content``).
- **erasure** deletes those objects. On a versioned bucket it deletes every
  version and delete marker too, so nothing stays recoverable.
- **suspension** tags each object (``dsr-suspended=true`` by default).
- **correction** rewrites top-level keys of JSON objects, keeping the object's
  content type, metadata and tags. The write is conditional on the ETag that
  was read, so a concurrent change makes it retry rather than be lost. On a
  versioned bucket the previous version keeps the old value until erasure.
- **third-party records** are the lines of JSON-lines provision-log objects;
  **third-party stop** writes the log's ``stop_marker`` object, which whatever
  provides data to third parties must check before it does.

Every destructive operation takes ``dry_run`` and then reports what it would
change (erasure lists the keys) without changing anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connectors.base import Connector, Identifiers
from connectors.errors import ConnectorError, FatalError
from connectors.results import CheckResult, OperationResult
from connectors.s3.bucket import Bucket, ObjectInfo, tagging
from connectors.s3.config import S3Config
from connectors.s3.content import content, kind_of, load_json
from connectors.s3.keys import KeyPattern, parse_pattern
from streams.records import FAN_OUT_KINDS, Change, CorrectionReport, Kind, utcnow

#: An erasure's details list at most this many keys.
MAX_LISTED_KEYS = 1000
#: What a disclosure record tells of an object; erasure removes all of it.
RECORD_FIELDS = ("content", "content_type", "key", "last_modified", "size")


class S3Connector(Connector[S3Config]):
    """Personal data in S3 objects under per-subject key prefixes."""

    name = "s3"
    Config = S3Config
    capabilities = FAN_OUT_KINDS

    def __init__(self, system: str, config: Mapping[str, Any] | S3Config) -> None:
        super().__init__(system, config)
        cfg = self.config
        self._prefixes = [parse_pattern(p) for p in cfg.prefixes]
        log = cfg.provision_log
        self._log = parse_pattern(log.key) if log else None
        self._marker = parse_pattern(log.stop_marker) if log and log.stop_marker else None
        self._bucket = Bucket(system, cfg)

    def __repr__(self) -> str:
        return f"<S3Connector system={self.system!r} bucket={self.config.bucket!r}>"

    @classmethod
    def kinds_for(cls, config: S3Config) -> frozenset[Kind]:
        kinds = {Kind.DISCLOSURE, Kind.ERASURE}
        if config.suspension:
            kinds.add(Kind.SUSPENSION)
        if config.correction:
            kinds.add(Kind.CORRECTION)
        if log := config.provision_log:
            kinds.add(Kind.THIRD_PARTY_RECORDS)
            if log.stop_marker:
                kinds.add(Kind.THIRD_PARTY_STOP)
        return frozenset(kinds)

    def check(self) -> CheckResult:
        try:
            self._bucket.head_bucket()
            versioned = self._bucket.versioned()
        except ConnectorError as exc:
            return CheckResult(False, str(exc))
        state = "versioned" if versioned else "not versioned"
        return CheckResult(True, f"bucket {self.config.bucket!r} is reachable ({state})")

    def close(self) -> None:
        self._bucket.close()

    # -- operations ---------------------------------------------------------

    def disclose(self, identifiers: Identifiers) -> OperationResult:
        self._require(Kind.DISCLOSURE)
        records = [
            record
            for pattern, obj in self._objects(self._prefixes, identifiers)
            if (record := self._describe(pattern, obj)) is not None
        ]
        return OperationResult(records=records, fields=_fields(records))

    def erase(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.ERASURE)
        locations = self._locations(self._prefixes, identifiers)
        if not locations:
            return OperationResult(dry_run=dry_run)
        versioned = self._bucket.versioned()
        targets: dict[tuple[str, str | None], None] = {}  # an ordered set of (key, version)
        per_pattern: list[dict[str, Any]] = []
        for pattern, location in locations:
            found: list[tuple[str, str | None]]
            if versioned:
                versions = self._bucket.versions(location, folder=pattern.is_folder)
                found = [(v.key, v.version_id) for v in versions]
            else:
                objects = self._bucket.objects(location, folder=pattern.is_folder)
                found = [(o.key, None) for o in objects]
            new = [t for t in found if t not in targets]
            targets.update(dict.fromkeys(new))
            entry: dict[str, Any] = {"pattern": pattern.text, "objects": len({k for k, _ in new})}
            per_pattern.append({**entry, "versions": len(new)} if versioned else entry)
        if not dry_run:
            self._bucket.delete(
                [{"Key": k, "VersionId": v} if v else {"Key": k} for k, v in targets]
            )
        keys = sorted({k for k, _ in targets})
        details: dict[str, Any] = {
            "versioned": versioned,
            "prefixes": per_pattern,
            "keys": keys[:MAX_LISTED_KEYS],
        }
        if len(keys) > MAX_LISTED_KEYS:
            details["keys_truncated"] = True
        return OperationResult(
            changed=len(keys),
            fields=list(RECORD_FIELDS) if keys else [],
            details=details,
            dry_run=dry_run,
        )

    def suspend(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.SUSPENSION)
        assert self.config.suspension is not None
        tag = self.config.suspension.tag
        objects = self._objects(self._prefixes, identifiers)
        changed = 0
        for _, obj in objects:
            tags = self._bucket.tags(obj.key)
            if tags.get(tag.key) == tag.value:
                continue
            changed += 1
            if not dry_run:
                self._bucket.set_tags(obj.key, {**tags, tag.key: tag.value})
        return OperationResult(
            changed=changed,
            fields=[tag.key] if changed else [],
            details={"tag": {tag.key: tag.value}, "objects": len(objects), "tagged": changed},
            dry_run=dry_run,
        )

    def correct(
        self, identifiers: Identifiers, changes: Sequence[Change], *, dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.CORRECTION)
        assert self.config.correction is not None
        correctable = set(self.config.correction.correctable)
        wanted = {c.field: c.value for c in changes}
        entries: list[dict[str, Any]] = []
        present: set[str] = set()
        changed = 0
        for _, obj in self._objects(self._prefixes, identifiers):
            loaded = self._json_object(obj)
            if loaded is None:
                continue
            doc, meta = loaded
            present.update(doc)
            diff = {
                f: v
                for f, v in wanted.items()
                if f in correctable and f in doc and not _same(doc[f], v)
            }
            if not diff:
                continue
            changed += 1
            entries += [
                {"table": obj.key, "field": f, "old": doc[f], "new": v} for f, v in diff.items()
            ]
            if not dry_run:
                self._rewrite(obj.key, {**doc, **diff}, meta)
        return OperationResult(
            changed=changed,
            fields=sorted({e["field"] for e in entries}),
            correction=CorrectionReport.of(entries, wanted, present, correctable),
            dry_run=dry_run,
        )

    def third_party_records(self, identifiers: Identifiers) -> OperationResult:
        self._require(Kind.THIRD_PARTY_RECORDS)
        assert self._log is not None
        records: list[dict[str, Any]] = []
        for pattern, obj in self._objects([self._log], identifiers):
            records += self._log_lines(pattern, obj)
        details: dict[str, Any] = {}
        if records and self._marker is not None:
            marker = self._marker.resolve(identifiers)
            details["provision_stopped"] = marker is not None and self._bucket.exists(marker)
        return OperationResult(records=records, fields=_fields(records), details=details)

    def stop_third_party_provision(
        self, identifiers: Identifiers, *, grounds: Sequence[str], dry_run: bool = False
    ) -> OperationResult:
        self._require(Kind.THIRD_PARTY_STOP)
        assert self._log is not None and self._marker is not None
        marker = self._marker.resolve(identifiers)
        logs = self._objects([self._log], identifiers)
        if marker is None or not logs or self._bucket.exists(marker):
            return OperationResult(dry_run=dry_run)
        if not dry_run:
            body = {"stopped": True, "stopped_at": utcnow().isoformat(), "grounds": list(grounds)}
            self._bucket.put(marker, json.dumps(body).encode(), "application/json")
        return OperationResult(
            changed=1, fields=["stop_marker"], details={"stop_marker": marker}, dry_run=dry_run
        )

    # -- plumbing -----------------------------------------------------------

    def _require(self, kind: Kind) -> None:
        if not self.supports(kind):
            raise self._not_supported(kind)

    def _source(self, pattern: KeyPattern) -> str:
        return f"{self.config.bucket}/{pattern.text}"

    def _locations(
        self, patterns: Iterable[KeyPattern], identifiers: Identifiers
    ) -> list[tuple[KeyPattern, str]]:
        """Each pattern the subject's identifiers fill in, with its key or prefix.

        Every value is checked before anything is listed, so an unsafe value
        fails the whole operation up front.
        """
        resolved = [(p, p.resolve(identifiers)) for p in patterns]
        return [(p, loc) for p, loc in resolved if loc is not None]

    def _objects(
        self, patterns: Iterable[KeyPattern], identifiers: Identifiers
    ) -> list[tuple[KeyPattern, ObjectInfo]]:
        """The subject's current objects, each once, with the first pattern that found it."""
        seen: set[str] = set()
        found: list[tuple[KeyPattern, ObjectInfo]] = []
        for pattern, location in self._locations(patterns, identifiers):
            for obj in self._bucket.objects(location, folder=pattern.is_folder):
                if obj.key not in seen:
                    seen.add(obj.key)
                    found.append((pattern, obj))
        return found

    def _describe(self, pattern: KeyPattern, obj: ObjectInfo) -> dict[str, Any] | None:
        got = self._bucket.get(obj.key)
        if got is None:
            return None  # deleted since it was listed
        content_type = str(got.get("ContentType") or "")
        kind = kind_of(content_type, obj.key)
        limit = self.config.max_content_bytes
        data = None
        if kind != "other" and obj.size <= limit:
            data = self._bucket.read(got["Body"], limit)
        else:
            got["Body"].close()
        return {
            "_source": self._source(pattern),
            "key": obj.key,
            "size": obj.size,
            "last_modified": obj.last_modified.isoformat(),
            "content_type": content_type or None,
            **content(kind, content_type, data, limit),
        }

    def _json_object(self, obj: ObjectInfo) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A JSON object's top-level mapping and its GetObject response, or None."""
        limit = self.config.max_content_bytes
        if obj.size > limit:
            return None
        got = self._bucket.get(obj.key)
        if got is None:
            return None
        if kind_of(str(got.get("ContentType") or ""), obj.key) != "json":
            got["Body"].close()
            return None
        try:
            doc = load_json(self._bucket.read(got["Body"], limit))
        except ValueError:
            return None
        return (doc, got) if isinstance(doc, dict) else None

    def _rewrite(self, key: str, doc: dict[str, Any], got: dict[str, Any]) -> None:
        extra: dict[str, Any] = {"Metadata": got.get("Metadata") or {}}
        if got.get("ETag"):
            extra["IfMatch"] = got["ETag"]
        tags = self._bucket.tags(key)
        if tags:
            extra["Tagging"] = tagging(tags)
        body = json.dumps(doc, ensure_ascii=False).encode()
        self._bucket.put(key, body, str(got.get("ContentType") or "application/json"), **extra)

    def _log_lines(self, pattern: KeyPattern, obj: ObjectInfo) -> list[dict[str, Any]]:
        limit = self.config.max_content_bytes
        got = self._bucket.get(obj.key)
        if got is None:
            return []
        data = self._bucket.read(got["Body"], limit)
        if len(data) > limit:
            raise FatalError(
                f"system {self.system!r}: a provision-log object is larger than "
                f"max_content_bytes ({limit})"
            )
        records: list[dict[str, Any]] = []
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = load_json(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise FatalError(
                    f"system {self.system!r}: line {number} of a provision-log object "
                    "is not a JSON object"
                )
            records.append({**record, "_source": self._source(pattern)})
        return records


def _fields(records: list[dict[str, Any]]) -> list[str]:
    return sorted({k for r in records for k in r} - {"_source"})


def _same(old: Any, new: Any) -> bool:
    return type(old) is type(new) and old == new
