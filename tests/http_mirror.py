"""A local HTTP server (127.0.0.1 only) serving a directory, with ranges, for the download tests.

It answers ``Range: bytes=N-`` with 206 and the rest of the file, can cut a transfer after some
bytes (``cut``: path → bytes sent before the connection drops, once per path) and serve other
bytes than the file's (``corrupt``: path → bytes); every request is recorded with its range.
"""

from __future__ import annotations

import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Served:
    url: str
    root: Path
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    cut: dict[str, int] = field(default_factory=dict)
    corrupt: dict[str, bytes] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # body bytes sent per path, all requests


def _handler(served: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
            served.requests.append((path, self.headers.get("Range")))
            file = (served.root / path.lstrip("/")).resolve()
            if not file.is_relative_to(served.root.resolve()) or not file.is_file():
                self.send_error(404)
                return
            data = served.corrupt.get(path, file.read_bytes())
            start = 0
            if self.headers.get("Range", "").startswith("bytes="):
                start = int(self.headers["Range"][6:].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            limit = served.cut.pop(path, None)
            chunk = body if limit is None else body[:limit]
            self.wfile.write(chunk)
            served.sent[path] = served.sent.get(path, 0) + len(chunk)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve(root: Path) -> Iterator[Served]:
    """Serve ``root`` on 127.0.0.1 (a free port) for the duration of the block."""
    served = Served("", root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
