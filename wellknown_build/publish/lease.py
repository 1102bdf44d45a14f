"""One publish per deployment at a time: a lease object taken with an S3 conditional write.

`<prefix>.wellknown-build/lease.json` is created with `If-None-Match: *`, so of two publishes
only one gets it; the other stops before any change, naming the holder. The holder renews it
while it works (`If-Match` on its own ETag) and deletes it when done. A publish that dies
leaves it until it expires; even then it is only broken on request (`--break-lease`), since
"expired" may also mean a clock or a very slow run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import logging
import os
import socket
import threading
import uuid
from types import TracebackType

from .. import jsondoc
from ..errors import PublishError
from ..timing import iso
from .s3 import Bucket, PreconditionFailed
from .state import LEASE_NAME

log = logging.getLogger(__name__)
DURATION = 15 * 60  # seconds a lease lasts unless renewed
RENEW_EVERY = 60.0


class LeaseHeld(PublishError):
    """Another publish holds the lease."""


def _holder() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _describe(data: bytes | None) -> tuple[str, dt.datetime | None]:
    """Who holds a lease and until when, from its body (input: anything may be in it)."""
    try:
        raw = jsondoc.loads(data or b"")
        holder = str(raw["holder"])[:200]
        expires = dt.datetime.fromisoformat(str(raw["expires"]).replace("Z", "+00:00"))
        return holder, expires
    except (ValueError, KeyError, TypeError):
        return "unknown holder (unreadable lease)", None


class Lease:
    def __init__(
        self, bucket: Bucket, prefix: str, *, break_existing: bool = False, key: str | None = None
    ) -> None:
        self.bucket = bucket
        self.key = key or prefix + LEASE_NAME  # key: a --site deployment's own lease
        self.break_existing = break_existing
        self.etag: str | None = None
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: str | None = None

    def _body(self) -> dict[str, str]:
        now = dt.datetime.now(dt.timezone.utc)
        return {
            "holder": _holder(),
            "token": self.token,
            "started": iso(now),
            "expires": iso(now + dt.timedelta(seconds=DURATION)),
        }

    def acquire(self) -> None:
        try:
            self.etag = self.bucket.put_json(self.key, self._body(), if_match="")
        except PreconditionFailed:
            found = self.bucket.get(self.key)
            holder, expires = _describe(found[0] if found else None)
            now = dt.datetime.now(dt.timezone.utc)
            if not self.break_existing:
                when = f"until {iso(expires)}" if expires else "with no expiry"
                stale = expires is not None and expires < now
                hint = (
                    "it has expired (that publish probably died): run again with --break-lease"
                    if stale
                    else "wait for it, or if it died, run again with --break-lease"
                )
                raise LeaseHeld(
                    f"another publish is running ({holder}, lease s3://{self.bucket.name}/"
                    f"{self.key} {when}); nothing was changed: {hint}"
                ) from None
            log.warning("breaking the lease of %s (--break-lease)", holder)
            # renewed or released meanwhile: the create below decides
            with contextlib.suppress(PreconditionFailed):
                self.bucket.delete(self.key, if_match=found[1] if found else None)
            try:
                self.etag = self.bucket.put_json(self.key, self._body(), if_match="")
            except PreconditionFailed:
                raise LeaseHeld(
                    f"another publish took the lease s3://{self.bucket.name}/{self.key} while "
                    "it was being broken; nothing was changed"
                ) from None
        self._renewer = threading.Thread(target=self._renew, daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                self.etag = self.bucket.put_json(self.key, self._body(), if_match=self.etag)
            except PreconditionFailed:
                self.lost = "the lease was broken by another publish while this one ran"
                log.error("%s", self.lost)
                return
            except PublishError as e:
                log.warning("could not renew the lease: %s", e)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.etag is None or self.lost:
            return
        try:
            self.bucket.delete(self.key, if_match=self.etag)
        except PreconditionFailed:
            log.warning("the lease %s changed hands; left as it is", self.key)
        except PublishError:  # a store without conditional deletes: it is still ours
            try:
                self.bucket.delete(self.key)
            except PublishError as e:
                log.warning("could not release the lease %s: %s", self.key, e)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
