"""`benchkit weights fetch` against a real HTTP server on loopback: direct links (with HTTP Range
resume) and a minimal Hugging Face Hub (HEAD/GET on /{repo}/resolve/{revision}/{file}, reached
through HF_ENDPOINT). Every file is verified, failures are one line each, users' files are never
touched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import urllib.parse
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from metrics import weights as W
from metrics import weights_fetch as F

COMMIT = "c0ffee" + "0" * 34
REAL_REGISTRY = dict(W.REGISTRY)


class _Handler(BaseHTTPRequestHandler):
    """Files under root/files (direct links) and root/hub/<org>/<repo> (Hub repos, any revision)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        state = self.server.state
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        state.requests.append((self.command, path, self.headers.get("Range")))
        hub = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        file = (state.root / "hub" / hub[1] / hub[3]) if hub else (state.root / "files" / path[len("/files/"):])
        headers = {"X-Repo-Commit": COMMIT} if hub else {}
        if not path.startswith("/files/") and not hub or not file.is_file():
            self._reply(404, {**headers, "X-Error-Code": "EntryNotFound", "Content-Length": "0"}, b"", head)
            return
        data = file.read_bytes()
        if hub:
            sha256 = hashlib.sha256(data).hexdigest()
            if file.suffix in (".json", ".txt"):  # a git file: ETag is git's blob sha1
                headers["ETag"] = '"%s"' % hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            else:  # an LFS file: the Hub's sha256 and size of the real content
                etag = state.etags.get(path, sha256)
                headers.update({"ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        start, status = 0, 200
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if wanted:
            start = int(wanted[1])
            if start >= len(data):
                self._reply(416, {**headers, "Content-Range": f"bytes */{len(data)}", "Content-Length": "0"}, b"", head)
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers.update({"Content-Length": str(len(body)), "Accept-Ranges": "bytes"})
        cut = None if head else state.truncate.pop(path, None)
        self._reply(status, headers, body if cut is None else body[:cut], head)
        if cut is not None:
            self.close_connection = True  # the rest never comes: the client sees the body end early

    def _reply(self, status: int, headers: dict, body: bytes, head: bool) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)
            self.wfile.flush()


class _State:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str, str | None]] = []
        self.truncate: dict[str, int] = {}  # path -> bytes sent before closing, once
        self.etags: dict[str, str] = {}  # hub path -> the sha256 the Hub lists (to simulate an altered transfer)

    def gets(self, path: str) -> list[str | None]:
        return [rng for method, p, rng in self.requests if method == "GET" and p == path]


def _bytes(seed: str, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"{seed}{len(out)}".encode()).digest()
    return out[:n]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CONTENT = {
    "files/inception-2015-12-05.pt": _bytes("inception", 300_000),
    "files/alexnet-owt-7be5be79.pth": _bytes("alexnet", 50_000),  # its sha256 does not start with 7be5be79
    "files/vgg16-397923af.pth": _bytes("vgg", 80_000),
    "hub/xswu/HPSv2/HPS_v2.1_compressed.pt": _bytes("hps", 120_000),
    "hub/yuvalkirstain/PickScore_v1/model.safetensors": _bytes("pick", 90_000),
    "hub/yuvalkirstain/PickScore_v1/config.json": b'{"model_type": "clip"}\n',
}


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """The server, an empty $BENCHKIT_WEIGHTS and HF cache, and a registry pointing at the server."""
    import huggingface_hub.constants

    root = tmp_path / "served"
    for rel, data in CONTENT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.state = _State(root)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.delenv(W.OVERRIDES_ENV, raising=False)
    for var, sub in (("BENCHKIT_WEIGHTS", "w"), ("BENCHKIT_CACHE", "cache"), ("HF_HUB_CACHE", "hub"), ("TORCH_HOME", "torch")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("HF_ENDPOINT", base)
    # No telemetry round trip to huggingface.co (agent detection) from a test.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)
    R = REAL_REGISTRY
    monkeypatch.setattr(W, "REGISTRY", {
        "fid-inception": replace(R["fid-inception"], source=f"{base}/files/inception-2015-12-05.pt", extra_paths=()),
        "lpips-alexnet": replace(R["lpips-alexnet"], source=f"{base}/files/alexnet-owt-7be5be79.pth"),
        # an entry whose publisher gives the full sha256
        "lpips-vgg16": replace(R["lpips-vgg16"], source=f"{base}/files/vgg16-397923af.pth",
                               sha256=_sha(CONTENT["files/vgg16-397923af.pth"]), sha256_prefix=None),
        "hpsv2.1": R["hpsv2.1"],
        "pickscore-v1": R["pickscore-v1"],
        "mps": R["mps"],
    })
    W._RESOLVED.clear()
    yield server.state, tmp_path / "w", tmp_path / "hub"
    server.shutdown()
    server.server_close()
    W._RESOLVED.clear()


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error:")]


def _snapshot_files(hub: Path, repo: str, name: str) -> list[Path]:
    return list((hub / f"models--{repo.replace('/', '--')}").glob(f"snapshots/*/{name}"))


def test_good_files_are_verified_or_pinned_and_a_second_fetch_checks_the_pin(world, cli):
    state, wd, hub = world
    wd.mkdir()
    (wd / "SHA256SUMS").write_text("# my pins, no newline at the end")
    (wd / "SHA256SUMS").chmod(0o640)
    code, out, err = cli("weights", "fetch", "fid-inception", "lpips-vgg16", "hpsv2.1", "pickscore-v1")
    assert code == 0, err
    sums = wd / "SHA256SUMS"  # pins are appended; the user's lines and the file's mode stay
    assert sums.read_text().startswith("# my pins, no newline at the end\n") and (sums.stat().st_mode & 0o777) == 0o640
    assert (wd / "inception-2015-12-05.pt").read_bytes() == CONTENT["files/inception-2015-12-05.pt"]
    assert (wd / "vgg16-397923af.pth").read_bytes() == CONTENT["files/vgg16-397923af.pth"]
    assert not list(wd.glob("*.partial"))
    # nothing published a sha256 for these three: pinned on this first fetch, and said so
    assert W.user_pins() == {"fid-inception": _sha(CONTENT["files/inception-2015-12-05.pt"]),
                             "hpsv2.1": _sha(CONTENT["hub/xswu/HPSv2/HPS_v2.1_compressed.pt"]),
                             "pickscore-v1": _sha(CONTENT["hub/yuvalkirstain/PickScore_v1/model.safetensors"])}
    assert err.count("is pinned in") == 3, err
    W._RESOLVED.clear()
    assert W.resolve("fid-inception").verified == "pin" and W.resolve("lpips-vgg16").verified == "registry"
    hps = W.resolve("hpsv2.1")
    assert hps.found_via == "HF cache" and hps.verified == "pin"
    pick = W.resolve("pickscore-v1")
    assert pick.path.parent.name == "snapshots" and (pick.path / "config.json").read_bytes() == CONTENT[
        "hub/yuvalkirstain/PickScore_v1/config.json"]
    assert ("HEAD", "/xswu/HPSv2/resolve/main/HPS_v2.1_compressed.pt", None) in state.requests

    # A second fetch finds everything present (verified) and downloads nothing.
    gets = sum(1 for method, *_ in state.requests if method == "GET")
    code, out, err = cli("weights", "fetch", "--json", "fid-inception", "lpips-vgg16", "hpsv2.1", "pickscore-v1")
    assert code == 0, err
    assert {r["name"]: (r["status"], r["verified"]) for r in json.loads(out)} == {
        "fid-inception": ("present", "pin"), "lpips-vgg16": ("present", "registry"),
        "hpsv2.1": ("present", "pin"), "pickscore-v1": ("present", "pin")}
    assert sum(1 for method, *_ in state.requests if method == "GET") == gets

    # The published file changes: a new download is checked against the pin and not kept.
    pins = (wd / "SHA256SUMS").read_text()
    (wd / "inception-2015-12-05.pt").unlink()
    (state.root / "files" / "inception-2015-12-05.pt").write_bytes(_bytes("changed", 300_000))
    code, out, err = cli("weights", "fetch", "fid-inception")
    assert code == 2
    [line] = _errors(err)
    assert "fid-inception" in line and "inception-2015-12-05.pt" in line and "does not match the pin" in line
    assert not (wd / "inception-2015-12-05.pt").exists() and not list(wd.glob("*.partial"))
    assert (wd / "SHA256SUMS").read_text() == pins


def test_a_corrupt_download_is_one_line_leaves_nothing_and_the_others_are_fetched(world, cli):
    state, wd, hub = world
    hps = "/xswu/HPSv2/resolve/main/HPS_v2.1_compressed.pt"
    state.etags[hps] = _sha(b"what the Hub says it is")  # the bytes that arrive are not what the Hub lists
    code, out, err = cli("weights", "fetch", "lpips-alexnet", "fid-inception", "hpsv2.1")
    assert code == 2
    alex, hpsline = _errors(err)
    assert alex.startswith("error: lpips-alexnet:") and "/files/alexnet-owt-7be5be79.pth" in alex
    assert "does not match the 7be5be79 its published file name claims" in alex and "nothing was kept" in alex
    assert hpsline.startswith("error: hpsv2.1:") and "HPS_v2.1_compressed.pt" in hpsline and "the Hub lists" in hpsline
    assert "2 of 3 not fetched" in err
    assert not list(wd.glob("alexnet*")) and not list(wd.glob("*.partial"))
    assert not _snapshot_files(hub, "xswu/HPSv2", "HPS_v2.1_compressed.pt")
    assert not list((hub / "models--xswu--HPSv2" / "blobs").glob(state.etags[hps]))
    assert (wd / "inception-2015-12-05.pt").read_bytes() == CONTENT["files/inception-2015-12-05.pt"]
    assert set(W.user_pins()) == {"fid-inception"}  # a file that failed is never pinned
    assert re.search(r"fid-inception\s.*fetched", out) and re.search(r"lpips-alexnet\s.*failed", out)


def test_a_truncated_download_is_resumed_with_a_range_request(world, cli):
    state, wd, _ = world
    path = "/files/inception-2015-12-05.pt"
    state.truncate[path] = 70_000
    code, _, err = cli("weights", "fetch", "fid-inception")
    assert code == 2
    [line] = _errors(err)
    assert "stopped at 70000 of 300000 bytes" in line and "again to resume" in line
    partial = wd / "inception-2015-12-05.pt.partial"
    assert partial.stat().st_size == 70_000 and not (wd / "inception-2015-12-05.pt").exists()
    code, out, err = cli("weights", "fetch", "fid-inception")
    assert code == 0, err
    assert state.gets(path) == [None, "bytes=70000-"]
    assert (wd / "inception-2015-12-05.pt").read_bytes() == CONTENT["files/inception-2015-12-05.pt"]
    assert not partial.exists() and W.user_pins() == {"fid-inception": _sha(CONTENT["files/inception-2015-12-05.pt"])}


def test_a_missing_file_is_one_line_per_weight(world, cli):
    state, wd, hub = world
    (state.root / "files" / "inception-2015-12-05.pt").unlink()
    (state.root / "hub" / "yuvalkirstain" / "PickScore_v1" / "config.json").unlink()
    code, out, err = cli("weights", "fetch", "fid-inception", "pickscore-v1", "lpips-vgg16")
    assert code == 2
    inc, pick = _errors(err)
    assert inc.startswith("error: fid-inception:") and "HTTP 404" in inc and "/files/inception-2015-12-05.pt" in inc
    assert pick.startswith("error: pickscore-v1:") and "yuvalkirstain/PickScore_v1/config.json" in pick
    assert "not in that repository" in pick
    assert not (wd / "inception-2015-12-05.pt").exists() and not list(wd.glob("*.partial"))
    assert set(W.user_pins()) == set()  # an incomplete folder weight is not pinned
    assert (wd / "vgg16-397923af.pth").is_file()


def test_users_files_are_never_overwritten_or_deleted(world, cli):
    state, wd, hub = world
    wd.mkdir()
    mine = {wd / "alexnet-owt-7be5be79.pth": b"my own alexnet", wd / "inception-2015-12-05.pt": b"my inception"}
    snap = hub / "models--xswu--HPSv2" / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    mine[snap / "HPS_v2.1_compressed.pt"] = b"an old hps"
    for path, data in mine.items():
        path.write_bytes(data)
    (wd / "SHA256SUMS").write_text(f"# my pins\n{_sha(b'the hps I trust')}  hpsv2.1\n")
    stamps = {p: p.stat().st_mtime_ns for p in mine}
    code, out, err = cli("weights", "fetch", "lpips-alexnet", "fid-inception", "hpsv2.1")
    assert code == 2
    alex, hps = _errors(err)
    assert alex.startswith("error: lpips-alexnet:") and "left as is" in alex and "does not match the 7be5be79" in alex
    assert hps.startswith("error: hpsv2.1:") and "already in the Hub cache" in hps and "does not match the pin" in hps
    assert "left as is" in hps
    for path, data in mine.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == stamps[path], path
    assert not state.gets("/files/alexnet-owt-7be5be79.pth") and not state.gets("/files/inception-2015-12-05.pt")
    assert re.search(r"fid-inception\s.*present\s.*unverified", out), out  # there, not vouched for, not replaced
    assert (wd / "SHA256SUMS").read_text() == f"# my pins\n{_sha(b'the hps I trust')}  hpsv2.1\n"


def test_unknown_names_and_a_missing_weights_folder_fail_before_any_download(world, cli, monkeypatch):
    state, wd, _ = world
    code, _, err = cli("weights", "fetch", "fid-inception", "nope")
    assert code == 2 and "unknown weight 'nope'; known: fid-inception, lpips-alexnet" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("weights", "fetch")
    assert code == 2 and "or pass --all" in err
    code, _, err = cli("weights", "fetch", "--all", "mps")
    assert code == 2 and "not both" in err
    monkeypatch.delenv("BENCHKIT_WEIGHTS")
    code, _, err = cli("weights", "fetch", "fid-inception")
    assert code == 2 and "set $BENCHKIT_WEIGHTS" in err
    assert state.requests == [] and not wd.exists()
    code, out, err = cli("weights", "--json")  # the listing is still the group's own command
    assert code == 0 and {r["name"] for r in json.loads(out)} == set(W.REGISTRY), err


def test_all_iterates_the_registry_and_a_weight_without_a_source_says_what_to_run(world, cli):
    state, wd, _ = world
    code, out, err = cli("weights", "fetch", "--all", "--json")
    assert code == 2
    alex, line = _errors(err)  # registry order
    assert alex.startswith("error: lpips-alexnet:")
    assert line.startswith("error: mps: no automatic download") and "gdown 17qrK_aJkVNM75ZEvMEePpLj6L867MLkN" in line
    rows = {r["name"]: r["status"] for r in json.loads(out)}
    assert rows == {"fid-inception": "fetched", "lpips-alexnet": "failed", "lpips-vgg16": "fetched",
                    "hpsv2.1": "fetched", "pickscore-v1": "fetched", "mps": "manual"}
    # with the alexnet entry's claim met and the MPS file put there by hand, --all has nothing left to do
    alex = CONTENT["files/alexnet-owt-7be5be79.pth"]
    W.REGISTRY["lpips-alexnet"] = replace(W.REGISTRY["lpips-alexnet"], sha256_prefix=_sha(alex)[:8])
    (wd / "MPS_overall_checkpoint.pth").write_bytes(b"mps by hand")
    code, out, err = cli("weights", "fetch", "--all", "--json")
    assert code == 0, err
    assert {r["name"]: r["status"] for r in json.loads(out)} == {
        "fid-inception": "present", "lpips-alexnet": "fetched", "lpips-vgg16": "present", "hpsv2.1": "present",
        "pickscore-v1": "present", "mps": "present"}


def test_the_real_registry_sources_are_understood():
    """Direct links are the entries whose URL names their file; hub fetches cover the printed command's files."""
    direct = {name for name, spec in REAL_REGISTRY.items() if F.direct_url(spec)}
    assert direct >= {"fid-inception", "lpips-alexnet", "lpips-vgg16"} and "mps" not in direct
    for name in direct:
        assert urllib.parse.unquote(F.direct_url(REAL_REGISTRY[name])).endswith("/" + REAL_REGISTRY[name].files[0])
    for spec in REAL_REGISTRY.values():
        if spec.hf_repo:
            files = F.hub_files(spec)
            assert files[:len(spec.files)] == spec.files and f" {spec.hf_repo} " in spec.fetch, spec.name
            assert set(files) >= set(spec.fetch.split(spec.hf_repo, 1)[1].split("--")[0].split()), spec.name
    assert {"vocab.json", "merges.txt"} <= set(F.hub_files(REAL_REGISTRY["clip-vit-large-patch14"]))
    assert os.environ.get("HF_ENDPOINT") is None or F.hub_endpoint() == os.environ["HF_ENDPOINT"].rstrip("/")
