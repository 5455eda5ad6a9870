"""Deploy the published documents to an S3 bucket: what nginx would serve from the static tree,
with the headers `feedsvc serve` sends, uploading only what changed, in an order that never
shows a reader a link into a 404.

    s3://bucket/prefix/feed.xml        the document `feed.xml`, at its URL path under the prefix
    s3://bucket/prefix/index.html      `/` (and `world/index.html`: `/world/`)
    s3://bucket/prefix/archive/1.xml   every other document the manifest lists

The bucket holds each document named in the manifest (`tree_files`, the static tree's mapping:
no browser pages, which are negotiated by Accept, and no `.gz` siblings). Each object carries the
`Content-Type` of its manifest row and the configured `Cache-Control` (`object_headers`: what the
responder sends, from the same two sources); with `deploy_gzip` its bytes are the gzip body, with
`Content-Encoding: gzip`. Its metadata `sha256` names the bytes (the manifest's object) and
`headers` digests the headers, so a changed `cache_max_age` re-uploads too.

Incremental: the prefix is listed once per deploy (paginated: one request per 1,000 objects). A
listed object whose ETag is the one this output folder's state file (`deploy-objects.json`)
recorded for the same bytes and headers is unchanged; a listed object not recorded there (a
fresh output folder, another host) is asked once with HEAD for its metadata; anything else is
uploaded. Then, in this order:

1. new documents that no reader subscribes to (archive pages, article pages, the stylesheet …);
2. changed ones (an archive page whose next-archive link now names a new page);
3. the subscription feeds (`feed.xml`, `feed.rss`, `feed.json`, and each declared feed's);
4. the index pages (`/`, `/<feed>/`) and `feeds.opml`, which link to the feeds;
5. the deletion of the objects under the prefix that no document is any more (the prefix is
   feedsvc's).

So every document a reader can reach from one in the bucket is there: a new document is reached
only through a changed one, which goes up after it.

A failure at any step leaves the bucket consistent: the subscription documents are the old ones
(linking to pages that are still there: nothing is deleted before step 4) or the new ones with
every page they link to already in place. The next deploy completes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feedsvc.config import path_for_log
from feedsvc.core.routes import DOCUMENTS, is_topic
from feedsvc.publish.layout import OBJECTS, ManifestRow, load_manifest, published_rows, write_atomic
from feedsvc.publish.static import GZIP_SUFFIX, tree_files

STAGES = ("new pages", "changed pages", "subscription feeds", "index pages and OPML")
STATE = "deploy-objects.json"  # in the output folder: key -> [ETag, fingerprint] of what was uploaded
STATUS = "deploy.json"  # in the output folder: the last deploy's outcome, for /healthz
UPLOADERS = 8  # uploads in flight at once
INVALIDATE_TIMEOUT = 120.0  # seconds the deploy_invalidate command may take
_TARGET = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?")
# What links to the subscription feeds: the index pages (/, /<feed>/) and the site's OPML.
_LINKING_KINDS = {kind.name for kind in DOCUMENTS if not kind.topic} - {"feed.xsl"}
# botocore error codes that retrying will not fix: the target or the credentials are wrong.
_FATAL_CODES = {
    "AccessDenied": "access denied",
    "InvalidAccessKeyId": "the access key is not known to the endpoint",
    "SignatureDoesNotMatch": "the secret key is wrong",
    "NoSuchBucket": "the bucket does not exist",
    "AllAccessDisabled": "access to the bucket is disabled",
}


class DeployError(Exception):
    """A deploy failed: `str()` is one line naming the target and the reason."""


class Superseded(Exception):
    """A newer publish collected an object this deploy was about to upload: deploy again."""


@dataclass(frozen=True)
class Target:
    bucket: str
    prefix: str  # "" or ends with "/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_target(value: str) -> Target:
    """`s3://bucket/prefix` (the prefix optional): ValueError when it is not one."""
    match = _TARGET.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"expected s3://bucket/prefix, got {value!r}")
    prefix = (match.group(2) or "").strip("/")
    return Target(match.group(1), prefix + "/" if prefix else "")


def object_headers(row: ManifestRow, cache_control: str, gzip: bool) -> dict[str, str]:
    """The headers of a document's object: the Content-Type and Cache-Control the responder sends
    for it (the manifest row's type, `Config.cache_control`), and Content-Encoding for gzip bytes."""
    headers = {"ContentType": row.content_type, "CacheControl": cache_control}
    if gzip:
        headers["ContentEncoding"] = "gzip"
    return headers


@dataclass(frozen=True)
class Upload:
    name: str  # the document's name (its URL path without the leading /)
    key: str
    obj: str  # the file under objects/
    headers: Mapping[str, str]
    stage: int = 0  # stage_of

    @property
    def fingerprint(self) -> str:
        """The bytes and the headers: what must match for the object to be left alone."""
        return self.obj + ":" + _headers_digest(self.headers)


def _headers_digest(headers: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(headers), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Plan:
    """What a deploy uploads, in stages, and deletes after."""

    # New pages, changed pages, the feeds, what links to the feeds (STAGES).
    stages: list[list[Upload]] = field(default_factory=lambda: [[] for _stage in STAGES])
    delete: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def uploads(self) -> list[Upload]:
        return [upload for stage in self.stages for upload in stage]


def stage_of(name: str, documents: Collection[str]) -> int:
    """0: a page no reader subscribes to; 1: a subscription feed; 2: an index page or the OPML.
    Only the site's and the declared feeds' documents are 1 or 2 (a feed is declared when its
    `<name>/feed.xml` is among `documents`): an article page that happens to be called
    `index.html` is a page, and goes up before the feeds that link to it."""
    feed, _, kind = name.rpartition("/")
    if feed and f"{feed}/feed.xml" not in documents:
        return 0
    if is_topic(name):
        return 1
    return 2 if kind in _LINKING_KINDS and (not feed or kind == "index.html") else 0


def wanted(rows: Mapping[str, ManifestRow], target: Target, cache_control: str, gzip: bool) -> dict[str, Upload]:
    """Every object the bucket should hold, by key (`rows`: every published document's, `published_rows`)."""
    files = tree_files(rows)
    out: dict[str, Upload] = {}
    for name, row in rows.items():
        if name not in files or name + GZIP_SUFFIX not in files:
            continue  # a browser page: the other representation of a URL, negotiated
        obj = row.gzip_object if gzip else row.object
        headers = object_headers(row, cache_control, gzip)
        out[target.prefix + name] = Upload(name, target.prefix + name, obj, headers, stage_of(name, files))
    return out


def make_plan(
    want: Mapping[str, Upload],
    listed: Mapping[str, str],
    recorded: Mapping[str, tuple[str, str]],
    head: Callable[[str], str | None],
) -> Plan:
    """`listed`: key -> ETag under the prefix; `recorded`: key -> (ETag, fingerprint) this folder
    uploaded; `head(key)`: the fingerprint in a listed object's metadata (one request)."""
    plan = Plan()
    for key, upload in sorted(want.items()):
        etag = listed.get(key)
        if etag is not None:
            known = recorded.get(key)
            fingerprint = known[1] if known is not None and known[0] == etag else head(key)
            if fingerprint == upload.fingerprint:
                plan.unchanged += 1
                continue
        # A changed page may link to a new one (an archive page's next-archive): new ones first.
        plan.stages[upload.stage + 1 if upload.stage or etag is not None else 0].append(upload)
    plan.delete = sorted(key for key in listed if key not in want)
    return plan


@dataclass
class Outcome:
    target: str
    uploaded: int = 0
    deleted: int = 0
    unchanged: int = 0
    requests: int = 0
    uploaded_names: list[str] = field(default_factory=list)
    deleted_keys: list[str] = field(default_factory=list)

    def changed_paths(self, target: Target, base_path: str = "/") -> list[str]:
        """The URL paths this deploy changed (uploaded or deleted), for a CDN purge: `feed.xml` is
        `/feed.xml`, `world/index.html` is `/world/`, under the path of base_url."""
        names = [*self.uploaded_names, *(key[len(target.prefix) :] for key in self.deleted_keys)]
        root = "/" + base_path.strip("/") + "/" if base_path.strip("/") else "/"
        return sorted({root + (name[: -len("index.html")] if name.rpartition("/")[2] == "index.html" else name)
                       for name in names})  # fmt: skip


class Deployment:
    """One deploy of an output folder's current manifest to a target, through a boto3 S3 client."""

    def __init__(self, out_dir: Path, target: Target, cache_control: str, gzip: bool, client: Any) -> None:
        self.out_dir = out_dir
        self.target = target
        self.cache_control = cache_control
        self.gzip = gzip
        self.client = client
        self.recorded = _read_state(out_dir, str(target))
        self._lock = threading.Lock()
        self.outcome = Outcome(str(target))

    def run(self) -> Outcome:
        """Raises DeployError (one line), or Superseded."""
        manifest = load_manifest(self.out_dir)
        if manifest is None:
            raise DeployError(f"deploy to {self.target}: nothing is published in {path_for_log(self.out_dir)} yet")
        with _errors(self.target):
            try:
                rows = published_rows(self.out_dir, manifest)
            except OSError:
                raise Superseded("the entry pages' index") from None  # a publish collected a shard
            want = wanted(rows, self.target, self.cache_control, self.gzip)
            listed = self._list()
            self.recorded = {k: v for k, v in self.recorded.items() if k in listed}
            self._head_unknown(want, listed)
            plan = make_plan(want, listed, self.recorded, self._head)
            self.outcome.unchanged = plan.unchanged
            try:
                for stage in plan.stages:
                    self._upload_all(stage)
                self._delete(plan.delete)
            finally:
                _write_state(self.out_dir, str(self.target), self.recorded)
        return self.outcome

    def _call(self, method: str, **kwargs: Any) -> Any:
        with self._lock:
            self.outcome.requests += 1
        return getattr(self.client, method)(Bucket=self.target.bucket, **kwargs)

    def _list(self) -> dict[str, str]:
        listed: dict[str, str] = {}
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=self.target.prefix, **token)
            listed.update((item["Key"], item["ETag"]) for item in page.get("Contents", ()))
            if not page.get("IsTruncated"):
                return listed
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def _head_unknown(self, want: Mapping[str, Upload], listed: Mapping[str, str]) -> None:
        """HEAD, in parallel, each listed object this folder has no record of (or another ETag)."""
        unknown = [k for k in want if k in listed and self.recorded.get(k, ("", ""))[0] != listed[k]]
        if unknown:
            with ThreadPoolExecutor(min(UPLOADERS, len(unknown))) as pool:
                list(pool.map(self._head, unknown))

    def _head(self, key: str) -> str | None:
        answer = self._call("head_object", Key=key)
        meta = answer.get("Metadata", {})
        fingerprint = f"{meta.get('sha256', '')}:{meta.get('headers', '')}"
        with self._lock:
            self.recorded[key] = (answer["ETag"], fingerprint)
        return fingerprint

    def _upload_all(self, stage: list[Upload]) -> None:
        """Every upload of a stage, UPLOADERS at a time; the first failure cancels the rest (the
        next stage never starts)."""
        if not stage:
            return
        pool = ThreadPoolExecutor(min(UPLOADERS, len(stage)))
        try:
            for done in [pool.submit(self._upload, upload) for upload in stage]:
                done.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _upload(self, upload: Upload) -> None:
        try:
            body = (self.out_dir / OBJECTS / upload.obj).read_bytes()
        except FileNotFoundError:
            raise Superseded(upload.name) from None
        meta = {"sha256": upload.obj, "headers": _headers_digest(upload.headers)}
        answer = self._call("put_object", Key=upload.key, Body=body, Metadata=meta, **upload.headers)
        with self._lock:
            self.recorded[upload.key] = (answer["ETag"], upload.fingerprint)
            self.outcome.uploaded += 1
            self.outcome.uploaded_names.append(upload.name)

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            answer = self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            if answer.get("Errors"):
                error = answer["Errors"][0]
                raise DeployError(f"deploy to {self.target}: cannot delete {error.get('Key')}: {error.get('Message')}")
            for key in batch:
                self.recorded.pop(key, None)
            self.outcome.deleted += len(batch)
            self.outcome.deleted_keys += batch


@contextlib.contextmanager
def _errors(target: Target) -> Any:
    """botocore's exceptions as one DeployError line naming the target."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError  # type: ignore[import-untyped]  # no bundled types

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        reason = _FATAL_CODES.get(code) or f"{code or 'error'}: {error.get('Message') or exc}"
        if code in ("404", "NoSuchBucket") and exc.operation_name == "ListObjectsV2":
            reason = "the bucket does not exist"
        raise DeployError(f"deploy to {target}: {reason}") from None
    except EndpointConnectionError as exc:
        where = urlsplit(str(exc.kwargs.get("endpoint_url", "")))
        raise DeployError(f"deploy to {target}: cannot reach the endpoint {where.scheme}://{where.netloc}") from None
    except BotoCoreError as exc:
        raise DeployError(f"deploy to {target}: {exc}") from None


def fatal(error: DeployError) -> bool:
    """A failure that retrying will not fix until the configuration or the bucket changes."""
    text = str(error)
    return any(reason in text for reason in _FATAL_CODES.values()) or "credentials" in text.lower()


def make_client(connect_timeout: float = 5.0, read_timeout: float = 30.0, attempts: int = 2) -> Any:
    """A boto3 S3 client from the standard places: AWS_* variables (AWS_ENDPOINT_URL too), the
    config and credentials files, an instance role. Raises DeployError when boto3 is missing."""
    try:
        import boto3  # type: ignore[import-untyped]  # boto3 ships no types (boto3-stubs would)
        from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]  # nor botocore
    except ImportError:
        raise DeployError("deploy: boto3 is not installed; pip install 'feedsvc[deploy]'") from None
    config = BotoConfig(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=UPLOADERS * 2,
    )
    return boto3.session.Session().client("s3", config=config)


def deploy(out_dir: Path, target: Target, cache_control: str, gzip: bool, client: Any) -> Outcome:
    """Deploy the current manifest, again when a publish collected an object meanwhile."""
    for _attempt in range(3):
        try:
            return Deployment(out_dir, target, cache_control, gzip, client).run()
        except Superseded:
            time.sleep(0.05)
    raise DeployError(f"deploy to {target}: publishes kept replacing the documents under way; will deploy the next")


def invalidate(command: str, paths: list[str], timeout: float = INVALIDATE_TIMEOUT) -> str | None:
    """Run the `deploy_invalidate` command with the changed URL paths as its arguments and on its
    stdin (one a line), bounded by `timeout`. Returns why it failed, or None."""
    import shlex
    import subprocess

    try:
        done = subprocess.run(
            [*shlex.split(command), *paths],
            input="".join(path + "\n" for path in paths).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"deploy_invalidate did not finish within {timeout:.0f} s"
    except (OSError, ValueError) as exc:
        return f"deploy_invalidate cannot run: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return f"deploy_invalidate exited with {done.returncode}" + (f": {said[-1]}" if said else "")
    return None


def _read_state(out_dir: Path, target: str) -> dict[str, tuple[str, str]]:
    try:
        state = json.loads((out_dir / STATE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("target") != target or not isinstance(state.get("objects"), dict):
        return {}
    return {k: (v[0], v[1]) for k, v in state["objects"].items() if isinstance(v, list) and len(v) == 2}


def _write_state(out_dir: Path, target: str, recorded: Mapping[str, tuple[str, str]]) -> None:
    data = {"target": target, "objects": {k: list(v) for k, v in sorted(recorded.items())}}
    with contextlib.suppress(OSError):  # lost: the next deploy asks the bucket (HEAD) instead
        write_atomic(out_dir / STATE, json.dumps(data, separators=(",", ":")).encode(), sync_dir=False)


def write_status(out_dir: Path, status: Mapping[str, Any]) -> None:
    with contextlib.suppress(OSError):
        write_atomic(out_dir / STATUS, json.dumps(dict(status), sort_keys=True).encode(), sync_dir=False)


def read_status(out_dir: Path) -> dict[str, Any] | None:
    """The last deploy's outcome (`deploy.json`), for /healthz; None when none was written."""
    try:
        status = json.loads((out_dir / STATUS).read_bytes())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None
