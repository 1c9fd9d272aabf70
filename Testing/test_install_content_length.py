"""`unetpp models install URL` from a server whose Content-Length header is not a size ("abc",
"-5"): read as an unknown size, as http.client reads it. Before, "abc" ended the install with
"Could not download ...: invalid literal for int() with base 10: 'abc'" and "-5" showed
"0 % (0.0 MB of -0.0 MB)" and then refused the complete download as "stopped after 1669085 of
-5 bytes"."""

from __future__ import annotations

import http.server
import threading

import pytest
from test_registry import make_package, zip_folder
from UNetPlusPlusLib.cli import main


@pytest.fixture()
def odd_length_server(tmp_path):
    """127.0.0.1 server: GET /<header value>/m.zip sends the archive with that Content-Length."""
    # a task no shipped model has: the install adds no "--task liver now segments with"
    # warning to the stderr these tests read
    make_package(tmp_path / "pkg", task="liver-test-task")
    data = zip_folder(tmp_path / "pkg", tmp_path / "m.zip").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection closes

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", self.path.split("/")[1])
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("header", ["abc", "-5"])
def test_a_content_length_that_is_no_size_reads_as_unknown(
    tmp_path, odd_length_server, monkeypatch, capsys, header
):
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    code = main(["models", "install", "--no-prepare", f"{odd_length_server}/{header}/m.zip"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("installed liver-test")
    lines = captured.err.strip().splitlines()
    assert lines[0] == "download: 0.0 MB (size unknown)" and lines[-1].endswith("(size unknown)")
    assert (tmp_path / "home" / "models" / "liver-test" / "model.json").is_file()
