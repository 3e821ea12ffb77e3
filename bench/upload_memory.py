"""Peak RSS of an ``orch serve`` process while it takes (and gives back) a large upload.

Usage: python bench/upload_memory.py [--size-mb 500] [--json-mb 300]

Starts ``orch serve`` in its own process on a loopback port with a temporary database,
uploads a ``--size-mb`` file through ``POST /v1/files`` as the SDK does (multipart), its bytes
generated on the fly so the client holds none of it, then downloads it again, and reads the
server's peak RSS (Linux ``VmHWM``, reset between phases through ``/proc/PID/clear_refs``).
Then it posts a ``--json-mb`` JSON body, which the engine refuses (413) without holding it.
Loopback only; the figure goes to the README's performance table.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2

CHUNK = 1024 * 1024
BOUNDARY = "orchbenchboundary"


def status_kb(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field in kB (VmRSS, VmHWM)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def reset_peak(pid: int) -> None:
    """Start VmHWM over from the current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def start_server(db: Path) -> tuple[subprocess.Popen, str]:
    log = db.with_suffix(".log")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orch", "serve", "--port", "0", "--db", str(db)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+/v1)", log.read_text())
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"orch serve did not start: {log.read_text()}")


def pattern(size: int) -> Iterator[bytes]:
    """``size`` bytes of a cheap, position-dependent pattern, a chunk at a time."""
    block = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    index = 0
    while sent < size:
        piece = (index.to_bytes(8, "big") + block[8:])[: size - sent]
        yield piece
        sent += len(piece)
        index += 1


def multipart(size: int, digest: hashlib._Hash) -> tuple[Iterator[bytes], int]:
    """A streamed multipart body (purpose + a file of ``size`` bytes) and its length."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        for piece in pattern(size):
            digest.update(piece)
            yield piece
        yield tail

    return body(), len(head) + size + len(tail)


def upload(base_url: str, pid: int, size: int) -> str:
    digest = hashlib.sha256()
    body, length = multipart(size, digest)
    headers = {
        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
        "content-length": str(length),
    }
    reset_peak(pid)
    start = time.perf_counter()
    res = httpx2.post(base_url + "/files", content=body, headers=headers, timeout=600)
    elapsed = time.perf_counter() - start
    res.raise_for_status()
    file = res.json()
    assert file["bytes"] == size, file
    print(
        f"upload {size / 2**20:.0f} MB: {elapsed:.1f} s ({size / 2**20 / elapsed:.0f} MB/s), "
        f"server peak RSS {status_kb(pid, 'VmHWM') / 1024:.0f} MB"
    )
    download(base_url, pid, file["id"], size, digest.hexdigest())
    return file["id"]


def download(base_url: str, pid: int, file_id: str, size: int, expected: str) -> None:
    reset_peak(pid)
    digest = hashlib.sha256()
    received = 0
    start = time.perf_counter()
    with httpx2.stream("GET", f"{base_url}/files/{file_id}/content", timeout=600) as res:
        res.raise_for_status()
        for chunk in res.iter_bytes():
            digest.update(chunk)
            received += len(chunk)
    elapsed = time.perf_counter() - start
    assert received == size and digest.hexdigest() == expected, "download differs"
    print(
        f"download: {elapsed:.1f} s, same sha256, "
        f"server peak RSS {status_kb(pid, 'VmHWM') / 1024:.0f} MB"
    )


def big_json(base_url: str, pid: int, size: int) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"model": "m", "instructions": "'
        for piece in pattern(size):
            yield piece.hex().encode()[: len(piece)]
        yield b'"}'

    reset_peak(pid)
    headers = {"content-type": "application/json", "OpenAI-Beta": "assistants=v2"}
    res = httpx2.post(base_url + "/assistants", content=body(), headers=headers, timeout=600)
    print(
        f"JSON body of {size / 2**20:.0f} MB: {res.status_code} "
        f"{res.json()['error']['code']}, server peak RSS {status_kb(pid, 'VmHWM') / 1024:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--json-mb", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, base_url = start_server(Path(tmp) / "engine.db")
        try:
            pid = process.pid
            print(f"orch serve (pid {pid}) idle: RSS {status_kb(pid, 'VmRSS') / 1024:.0f} MB")
            upload(base_url, pid, args.size_mb * 2**20)
            if args.json_mb:
                big_json(base_url, pid, args.json_mb * 2**20)
        finally:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
