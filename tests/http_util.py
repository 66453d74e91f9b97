"""A real HTTP file server on 127.0.0.1 for the downloader's tests (the standard library's, in a thread).

It serves ``files`` (URL path -> bytes, changeable while it runs) with ETag and Last-Modified,
answers ``Range`` (206, honouring ``If-Range``) unless ``ranges`` is off, ``If-None-Match`` (304),
404 for unknown paths, and can drop a connection after N bytes (``drop``: path -> bytes, once
each) or send slowly (``delay_s`` per 64 KiB). Every request is logged in ``log``.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BLOCK = 64 << 10


class FileServer:
    def __init__(self, files: dict[str, bytes] | None = None, ranges: bool = True) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.ranges = ranges
        self.drop: dict[str, int] = {}
        self.delay_s = 0.0
        self.status: dict[str, int] = {}  # path -> a forced status (e.g. 503, 403)
        self.announce: dict[str, int] = {}  # path -> a Content-Length to claim (a huge file)
        self.log: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: the log list records requests
                pass

            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                server._answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes | Path) -> str:
        self.files[path] = data.read_bytes() if isinstance(data, Path) else data
        return self.url + path

    def requests(self, path: str) -> list[dict]:
        with self._lock:
            return [entry for entry in self.log if entry["path"] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        entry = {"path": path.split("?", 1)[0], "query": path.partition("?")[2], "range": handler.headers.get("Range"),
                 "if_range": handler.headers.get("If-Range"), "status": 0, "sent": 0}
        with self._lock:
            self.log.append(entry)
        data = self.files.get(entry["path"])
        forced = self.status.get(entry["path"])
        if data is None or forced:
            entry["status"] = forced or 404
            handler.send_response(entry["status"])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if handler.headers.get("If-None-Match") == etag:
            entry["status"] = 304
            handler.send_response(304)
            handler.send_header("ETag", etag)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        start, status = 0, 200
        wanted = handler.headers.get("Range")
        if self.ranges and wanted and wanted.startswith("bytes=") and handler.headers.get("If-Range") in (None, etag):
            start = int(wanted[len("bytes="):].split("-", 1)[0])
            if start >= len(data):
                entry["status"] = 416
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            status = 206
        body = data[start:]
        entry["status"] = status
        handler.send_response(status)
        handler.send_header("ETag", etag)
        handler.send_header("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT")
        handler.send_header("Content-Type", "application/octet-stream")
        if self.ranges:
            handler.send_header("Accept-Ranges", "bytes")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.send_header("Content-Length", str(self.announce.get(entry["path"], len(body))))
        handler.end_headers()
        limit = self.drop.pop(entry["path"], None)
        try:
            for offset in range(0, len(body), BLOCK):
                block = body[offset: offset + BLOCK]
                if limit is not None and entry["sent"] + len(block) > limit:
                    block = block[: limit - entry["sent"]]
                    handler.wfile.write(block)
                    entry["sent"] += len(block)
                    handler.wfile.flush()
                    handler.connection.shutdown(socket.SHUT_RDWR)  # the connection drops halfway
                    handler.close_connection = True
                    return
                handler.wfile.write(block)
                entry["sent"] += len(block)
                if self.delay_s:
                    time.sleep(self.delay_s)
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            handler.close_connection = True
