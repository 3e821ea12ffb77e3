"""Multipart uploads read as they arrive: file parts stream to disk, form fields stay small.

The SDK sends ``files.create`` and container file uploads as ``multipart/form-data`` (a
``file`` part with a filename, text fields such as ``purpose``). :func:`read_upload` parses
the body chunk by chunk (python-multipart's streaming parser), so memory stays flat whatever
the size: file parts go to temporary files in the store's blob directory, fields are capped
and must be UTF-8. A file over :data:`FILE_LIMIT` (OpenAI's 512 MB) is a 413; the rest of
the body is read and discarded first (up to :data:`DRAIN_LIMIT`) so the client, still sending,
reads the answer instead of a reset connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from orch.engine.commits import fsync_path
from orch.engine.errors import ApiError, bad_request
from orch.engine.routes.bodies import DRAIN_LIMIT
from orch.engine.store import Store

#: OpenAI's limit for one uploaded file.
FILE_LIMIT = 512 * 1024 * 1024
#: A form field (``purpose``, ``expires_after[seconds]``): short text.
FIELD_LIMIT = 64 * 1024
#: Room in a body for the form's other parts, boundaries and part headers.
FORM_OVERHEAD = 1024 * 1024
_MAX_PARTS = 16


def too_large(limit: int) -> ApiError:
    """The 413 for a file over ``limit`` bytes."""
    return ApiError(
        413,
        f"File is too large: the maximum size of an uploaded file is {limit // 2**20} MB.",
        param="file",
        code="file_too_large",
    )


@dataclass
class UploadedFile:
    """A file part written to :attr:`path` (fsynced), not yet adopted by the store."""

    filename: str
    path: Path
    size: int


@dataclass
class Upload:
    """A parsed form: text ``fields`` and ``files``, by part name.

    The caller adopts the files it keeps (moving them away); :meth:`discard` removes the rest.
    """

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove the temporary files still in place."""
        for file in self.files.values():
            file.path.unlink(missing_ok=True)


class _PartSink:
    """python-multipart callbacks: headers per part, data to a field buffer or a file."""

    def __init__(self, store: Store, upload: Upload, file_limit: int):
        self.store = store
        self.upload = upload
        self.file_limit = file_limit
        self.parts = 0
        self._header: list[bytes] = [b"", b""]
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._buffer: bytearray | None = None
        self._file: UploadedFile | None = None
        self._out: IO[bytes] | None = None

    def callbacks(self) -> dict[str, Any]:
        """The callback table for :class:`MultipartParser`."""
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._add_header(0, d[s:e]),
            "on_header_value": lambda d, s, e: self._add_header(1, d[s:e]),
            "on_header_end": self._end_header,
            "on_headers_finished": self._open,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise bad_request(f"Too many parts in the form (at most {_MAX_PARTS}).")
        self._headers = {}

    def _add_header(self, index: int, data: bytes) -> None:
        self._header[index] += data
        if len(self._header[index]) > FIELD_LIMIT:
            raise bad_request("A part header of the multipart form is too long.")

    def _end_header(self) -> None:
        name, value = self._header
        self._headers[name.strip().lower()] = value.strip()
        self._header = [b"", b""]

    def _open(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        self._name = utf8(options.get(b"name", b""), "the name of a form part")
        if b"filename" not in options:
            self._buffer = bytearray()
            return
        filename = utf8(options[b"filename"], "the file name")
        self._file = UploadedFile(filename, self.store.blob_temp_path(), 0)
        self._out = open(self._file.path, "wb")  # closed by _end() or close()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None and self._file is not None:
            self._file.size += end - start
            if self._file.size > self.file_limit:
                raise too_large(self.file_limit)
            self._out.write(data[start:end])
        elif self._buffer is not None:
            self._buffer += data[start:end]
            if len(self._buffer) > FIELD_LIMIT:
                raise bad_request(f"The form field '{self._name}' is too long.", self._name)

    def _end(self) -> None:
        if self._file is not None and self._out is not None:
            self._out.close()
            self._out = None
            previous = self.upload.files.pop(self._name, None)
            if previous is not None:
                previous.path.unlink(missing_ok=True)
            self.upload.files[self._name] = self._file
        elif self._buffer is not None:
            self.upload.fields[self._name] = utf8(bytes(self._buffer), f"'{self._name}'")
        self._file = None
        self._buffer = None

    def close(self) -> None:
        """Close and remove a file part cut short (a refused or broken body)."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._file is not None:
            self._file.path.unlink(missing_ok=True)
            self._file = None


def utf8(raw: bytes, what: str) -> str:
    """``raw`` as UTF-8 text, or OpenAI's 400 naming ``what``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"Invalid encoding of {what}: form fields must be UTF-8.") from None


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise bad_request("Uploads must be multipart/form-data with 'file' and 'purpose'.")
    return options[b"boundary"]


def _declared_length(request: Request) -> int | None:
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return None


async def read_upload(request: Request, store: Store, file_limit: int | None = None) -> Upload:
    """Parse a multipart body; files land (fsynced) in the store's blob directory.

    Raises OpenAI's 400 for a body that is not multipart, malformed, or has non-UTF-8 or
    over-long fields, and 413 for a file over ``file_limit`` (default :data:`FILE_LIMIT`),
    also when ``Content-Length`` alone says so, before anything is written. Temporary files
    are removed on errors.
    """
    file_limit = FILE_LIMIT if file_limit is None else file_limit
    boundary = _boundary(request)
    upload = Upload()
    sink = _PartSink(store, upload, file_limit)
    parser = MultipartParser(boundary, sink.callbacks())
    chunks = request.stream()
    try:
        declared = _declared_length(request)
        if declared is not None and declared > file_limit + FORM_OVERHEAD:
            raise too_large(file_limit)
        await _feed(parser, chunks)
        if sink.parts == 0:
            raise bad_request("The multipart form has no parts.")
        for file in upload.files.values():
            await asyncio.to_thread(fsync_path, file.path)
    except BaseException as exc:
        sink.close()
        upload.discard()
        if isinstance(exc, ApiError):
            await _drain(chunks)
        raise
    return upload


async def _feed(parser: MultipartParser, chunks: AsyncIterator[bytes]) -> None:
    try:
        async for chunk in chunks:
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise bad_request(f"Could not parse the multipart form: {exc}") from None


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read (and drop) what the client still sends, so it gets to read the error."""
    seen = 0
    with contextlib.suppress(Exception):
        async for chunk in chunks:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                return
