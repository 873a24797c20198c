"""A local stand-in for the Hugging Face Hub, for upload/download round trips without network.

It speaks the part of the Hub HTTP API that `huggingface_hub` 2.4 and `transformers` use to create a
repo, commit files (`preupload` answers "regular" for every file, so no LFS/Xet), read repo info and
download files by revision. Repos live in a temporary folder: one snapshot folder per commit.

    with HubServer(tmp_path) as hub:          # http://127.0.0.1:<port>
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "dummy", "HF_HUB_OFFLINE": "0"}

Run it by hand with `python tests/hub_server.py --root /tmp/hub --port 8765`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

logger = logging.getLogger(__name__)

USER = "cancernet-tester"
REPO_TYPES = ("model", "dataset", "space")
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME = r"[A-Za-z0-9][\w.\-]*"


def git_blob_sha(data: bytes) -> str:
    """The git object id of a file, which the Hub reports as a regular file's oid/ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    folder: Path
    commits: list[str] = field(default_factory=list)  # oldest first
    messages: dict[str, str] = field(default_factory=dict)
    main: str = ""
    created: float = field(default_factory=time.time)
    sdk: str | None = None
    variables: list[dict] = field(default_factory=list)

    def snapshot(self, sha: str) -> Path:
        return self.folder / "commits" / sha

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision == "main":
            return self.main
        matches = [
            c for c in self.commits if c == revision or (len(revision) >= 7 and c.startswith(revision))
        ]
        return matches[0] if len(matches) == 1 else None

    def files(self, sha: str) -> list[str]:
        root = self.snapshot(sha)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


class HubStore:
    """Repos and commits on disk; every method is safe to call from the server's threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def create(
        self, repo_type: str, repo_id: str, *, private: bool, sdk: str | None, variables: list
    ) -> Repo:
        with self.lock:
            repo = Repo(repo_type, repo_id, private, self.root / f"{repo_type}s" / repo_id, sdk=sdk)
            repo.variables = list(variables or [])
            self.repos[(repo_type, repo_id)] = repo
            # Like the Hub: a new repo starts with one commit holding .gitattributes.
            self.commit(
                repo, "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs\n"}, []
            )
            return repo

    def commit(self, repo: Repo, message: str, add: dict[str, bytes], delete: list[str]) -> str:
        with self.lock:
            parent = repo.main
            digest = hashlib.sha1(f"{parent}\n{message}\n{time.time_ns()}".encode())
            for path in sorted(add):
                digest.update(path.encode() + b"\0" + add[path])
            sha = digest.hexdigest()
            new = repo.snapshot(sha)
            if parent:
                shutil.copytree(repo.snapshot(parent), new)
            else:
                new.mkdir(parents=True)
            for path in delete:
                target = new / path
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            for path, data in add.items():
                target = new / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            repo.commits.append(sha)
            repo.messages[sha] = message
            repo.main = sha
            return sha


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    server: _Server

    # ---- plumbing --------------------------------------------------------------------------------
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        logger.debug("hub %s", format % args)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.log.append((self.command, self.path, status))

    def _json(self, payload, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, e: HubError) -> None:
        headers = {"X-Error-Message": e.message}
        if e.code:
            headers["X-Error-Code"] = e.code
        self._send(e.status, json.dumps({"error": e.message}).encode(), headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def _need_token(self) -> None:
        if not self._token():
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.server.store.get(repo_type, repo_id)
        if repo is None or (repo.private and not self._token()):
            raise HubError(404 if repo is None else 401, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _sha(self, repo: Repo, revision: str) -> str:
        sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return sha

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.server.tokens.append(self._token())
        try:
            for method, pattern, handler in self.server.routes:
                match = re.fullmatch(pattern, path)
                if match and self.command in method:
                    handler(self, query=query, **match.groupdict())
                    return
            self.server.unrouted.append((self.command, self.path))
            raise HubError(404, f"No route for {self.command} {path}")
        except HubError as e:
            self._error(e)

    do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = _dispatch

    # ---- API -------------------------------------------------------------------------------------
    def whoami(self, query) -> None:
        self._need_token()
        orgs = sorted({r.repo_id.split("/")[0] for r in self.server.store.repos.values()} - {USER})
        self._json(
            {
                "type": "user",
                "name": USER,
                "fullname": "CancerNet tester",
                "orgs": [{"type": "org", "name": o, "roleInOrg": "admin"} for o in orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def agent_harnesses(self, query) -> None:
        self._json({"standardEnvVars": [], "harnesses": {}})  # huggingface_hub's user-agent registry: empty

    def create_repo(self, query) -> None:
        self._need_token()
        payload = json.loads(self._body() or b"{}")
        repo_type = payload.get("type") or "model"
        name, org = payload.get("name", ""), payload.get("organization") or USER
        repo_id = f"{org}/{name}"
        if repo_type not in REPO_TYPES or not re.fullmatch(f"{_NAME}/{_NAME}", repo_id):
            raise HubError(400, f"Invalid repo name or type: {repo_id!r} ({repo_type})")
        url = f"{self.server.url}/{_PREFIX[repo_type]}{repo_id}"
        with self.server.store.lock:
            if self.server.store.get(repo_type, repo_id) is not None:
                self._json({"error": "You already created this repo", "url": url}, 409)
                return
            if repo_type == "space" and payload.get("sdk") not in ("gradio", "docker", "static"):
                raise HubError(400, f"Invalid Space SDK {payload.get('sdk')!r}")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.server.store.create(
                repo_type,
                repo_id,
                private=private,
                sdk=payload.get("sdk"),
                variables=payload.get("variables"),
            )
        self._json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def validate_yaml(self, query) -> None:
        payload = json.loads(self._body() or b"{}")
        content = payload.get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if not match:
            self._json({"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
            return
        try:
            meta = yaml.safe_load(match.group(1))
        except yaml.YAMLError as e:
            self._json({"errors": [{"message": f"Invalid YAML: {e}"}]}, 400)
            return
        errors = _metadata_errors(meta, payload.get("repoType", "model"))
        self._json({"errors": [{"message": m} for m in errors], "warnings": []}, 400 if errors else 200)

    def repo_info(self, query, repo_type: str, repo_id: str, revision: str = "main") -> None:
        repo = self._repo(repo_type, repo_id)
        sha = self._sha(repo, revision)
        root = repo.snapshot(sha)
        card = _front_matter(root / "README.md")
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(repo.created)),
            "tags": list(card.get("tags") or []),
            "cardData": card,
            "siblings": [{"rfilename": f} for f in repo.files(sha)],
        }
        if repo_type == "model":
            info.update(
                modelId=repo_id, pipeline_tag=card.get("pipeline_tag"), library_name=card.get("library_name")
            )
            config = root / "config.json"
            if config.is_file():
                info["config"] = json.loads(config.read_text())
        if repo_type == "space":
            info.update(sdk=repo.sdk, runtime={"stage": "BUILDING"})
        self._json(info)

    def tree(self, query, repo_type: str, repo_id: str, revision: str, path: str = "") -> None:
        repo = self._repo(repo_type, repo_id)
        root = repo.snapshot(self._sha(repo, revision))
        base = root / path if path else root
        if not base.is_dir():
            raise HubError(404, f"Path {path} not found", "EntryNotFound")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        items = base.rglob("*") if recursive else base.iterdir()
        out = []
        for p in sorted(items):
            rel = p.relative_to(root).as_posix()
            if p.is_dir():
                out.append({"type": "directory", "path": rel, "oid": hashlib.sha1(rel.encode()).hexdigest()})
            else:
                data = p.read_bytes()
                out.append({"type": "file", "path": rel, "size": len(data), "oid": git_blob_sha(data)})
        self._json(out)

    def preupload(self, query, repo_type: str, repo_id: str, revision: str) -> None:
        self._need_token()
        repo = self._repo(repo_type, repo_id)
        root = repo.snapshot(self._sha(repo, revision))
        payload = json.loads(self._body() or b"{}")
        files = []
        for f in payload.get("files", []):
            existing = root / f["path"]
            oid = git_blob_sha(existing.read_bytes()) if existing.is_file() else None
            files.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        self._json({"files": files, "commitOid": repo.main})

    def commit(self, query, repo_type: str, repo_id: str, revision: str) -> None:
        self._need_token()
        repo = self._repo(repo_type, repo_id)
        if self._sha(repo, revision) != repo.main:
            raise HubError(400, "Only commits to the head of main are supported by this test server")
        message, add, delete = "", {}, []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent and parent != repo.main:
                    raise HubError(412, f"parentCommit {parent} is not the head of main")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                add[_safe_path(value["path"])] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                delete.append(_safe_path(value["path"]))
            else:
                raise HubError(422, f"This test server does not support {key!r} commit operations")
        sha = self.server.store.commit(repo, message or "Upload", add, delete)
        self.server.commit_log.append((repo_type, repo_id, sha, sorted(add), sorted(delete)))
        url = f"{self.server.url}/{_PREFIX[repo_type]}{repo_id}/commit/{sha}"
        self._json({"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    def space_variable(self, query, repo_id: str) -> None:
        self._need_token()
        repo = self._repo("space", repo_id)
        payload = json.loads(self._body() or b"{}")
        if not payload.get("key"):
            raise HubError(400, "A variable needs a key")
        repo.variables = [v for v in repo.variables if v.get("key") != payload["key"]] + [payload]
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        self._json(
            {
                v["key"]: {"value": v.get("value"), "description": v.get("description"), "updatedAt": now}
                for v in repo.variables
            }
        )

    def resolve(self, query, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        sha = self._sha(repo, revision)
        target = repo.snapshot(sha) / path
        if not target.is_file():
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = target.read_bytes()
        etag = git_blob_sha(data)
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
            "Last-Modified": formatdate(target.stat().st_mtime, usegmt=True),
        }
        start = _range_start(self.headers.get("Range"))
        if start:
            self._send(
                206, data[start:], {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            )
        else:
            self._send(200, data, headers)


def _range_start(header: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(match.group(1)) if match else 0


def _safe_path(path: str) -> str:
    if path.startswith("/") or ".." in Path(path).parts:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _front_matter(readme: Path) -> dict:
    if not readme.is_file():
        return {}
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", readme.read_text(encoding="utf-8"), re.S)
    data = yaml.safe_load(match.group(1)) if match else None
    return data if isinstance(data, dict) else {}


def _metadata_errors(meta, repo_type: str) -> list[str]:
    """A few of the Hub's metadata checks: the ones a card generator can get wrong."""
    if not isinstance(meta, dict):
        return ["Metadata must be a YAML mapping"]
    errors = []
    for key in ("tags", "datasets", "metrics"):
        if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
            errors.append(f'"{key}" must be a list of strings')
    if "license" in meta and not isinstance(meta["license"], str):
        errors.append('"license" must be a string')
    if repo_type == "model" and "model-index" in meta:
        index = meta["model-index"]
        if not isinstance(index, list) or not all(isinstance(m, dict) and "results" in m for m in index):
            errors.append('"model-index" must be a list of {name, results}')
        else:
            for result in (r for m in index for r in m["results"]):
                if not {"task", "dataset", "metrics"} <= set(result):
                    errors.append('"model-index" results need "task", "dataset" and "metrics"')
                for metric in result.get("metrics", []):
                    if not {"type", "value"} <= set(metric):
                        errors.append('"model-index" metrics need "type" and "value"')
    if repo_type == "space" and meta.get("sdk") not in ("gradio", "docker", "static"):
        errors.append('"sdk" must be one of gradio, docker, static')
    return errors


_REPO = rf"(?P<repo_id>{_NAME}/{_NAME})"
_TYPED = r"(?P<repo_type>model|dataset|space)s"
_ROUTES = [
    (("GET",), r"/api/whoami-v2", _Handler.whoami),
    (("GET",), r"/api/agent-harnesses", _Handler.agent_harnesses),
    (("POST",), r"/api/repos/create", _Handler.create_repo),
    (("POST",), r"/api/validate-yaml", _Handler.validate_yaml),
    (("POST",), rf"/api/{_TYPED}/{_REPO}/preupload/(?P<revision>[^/]+)", _Handler.preupload),
    (("POST",), rf"/api/{_TYPED}/{_REPO}/commit/(?P<revision>[^/]+)", _Handler.commit),
    (("POST",), rf"/api/spaces/{_REPO}/variables", _Handler.space_variable),
    (("GET",), rf"/api/{_TYPED}/{_REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.+))?", _Handler.tree),
    (("GET",), rf"/api/{_TYPED}/{_REPO}(?:/revision/(?P<revision>[^/]+))?", _Handler.repo_info),
    (
        ("GET", "HEAD"),
        rf"/(?P<repo_type>)?{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)",
        _Handler.resolve,
    ),
    (
        ("GET", "HEAD"),
        rf"/(?P<repo_type>dataset|space)s/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)",
        _Handler.resolve,
    ),
]


def _route(handler):
    """Fill defaults the regexes leave empty (model repos have no URL prefix; revision main)."""

    def call(self, query, **groups):
        groups = {k: v for k, v in groups.items() if v is not None}
        if "repo_type" in groups and not groups["repo_type"]:
            groups["repo_type"] = "model"
        if handler in (_Handler.repo_info,) and "revision" not in groups:
            groups["revision"] = "main"
        return handler(self, query=query, **groups)

    return call


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    store: HubStore
    url: str
    routes: list
    log: list
    tokens: list
    commit_log: list
    unrouted: list


class HubServer:
    """The local Hub on 127.0.0.1 in a background thread; a context manager."""

    def __init__(self, root: str | Path, port: int = 0) -> None:
        self.store = HubStore(Path(root))
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.httpd.store, self.httpd.url = self.store, self.url
        self.httpd.routes = [(m, p, _route(h)) for m, p, h in _ROUTES]
        self.httpd.log, self.httpd.tokens, self.httpd.commit_log, self.httpd.unrouted = [], [], [], []
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="local-hub", daemon=True)

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every answered request."""
        return list(self.httpd.log)

    @property
    def tokens(self) -> list[str | None]:
        return list(self.httpd.tokens)

    @property
    def commits(self) -> list[tuple[str, str, str, list[str], list[str]]]:
        """(repo_type, repo_id, sha, added paths, deleted paths) of every commit made over HTTP."""
        return list(self.httpd.commit_log)

    @property
    def unrouted(self) -> list[tuple[str, str]]:
        """Requests this server has no route for: API calls a client made that the test Hub does not speak."""
        return list(self.httpd.unrouted)

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.store.get(repo_type, repo_id)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder where repos are stored")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG)
    with HubServer(args.root, args.port) as hub:
        print(f"local Hub at {hub.url} (HF_ENDPOINT={hub.url}); Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
