"""kombu's filesystem transport (the embedded default broker) with atomic message files.

kombu 5.x `filesystem.Channel._put` opens `<ts>_<uuid>.<queue>.msg` and then writes the body,
while `_get` lists the folder, moves any `*.<queue>.msg` it finds and reads it with no lock: a
reader that comes between the open and the write reads an empty or half-written file and the
worker dies with a JSONDecodeError (seen once in ~600 submissions). Here the body is written to
a hidden temporary name first and renamed into place (os.replace is atomic on one file system),
so a reader only ever sees whole messages; a file that still cannot be decoded (written by
something else) is skipped and logged instead of killing the worker.

Used by config/settings.py (CELERY_BROKER_TRANSPORT) whenever the broker is `filesystem://`.
"""

from __future__ import annotations

import logging
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".partial-{name}")  # never matches _get
        try:
            with open(partial, "wb", buffering=0) as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:  # a file that is not JSON (already moved away): go on
                logger.error(
                    "Broker message for %s could not be decoded (%s); skipped.", queue, exc
                )


class Transport(filesystem.Transport):
    Channel = Channel
