"""Where manifests come from: a directory, or a branch of a git repository.

A source also says when it may have changed: `watch(on_change)` starts telling (a directory
through a watchdog observer, on its own thread, ignoring editors' swap and temp files and hidden
folders; git has nothing to watch: the service polls it) and returns the function that stops it.

Git goes through the `git` command line (no home-made protocol): a clone into a cache folder on
first use, then `fetch` + a detached checkout of the fetched commit; the revision is that
commit's SHA. A fetch that fails leaves the last checkout in place and raises `SourceError`, so
the service keeps its last good revision. Credentials in the URL (`https://user:token@host/...`)
never leave this class: `describe()` and every error show the URL without them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, urlsplit

from .errors import ReconcilerError
from .urls import HIDDEN, redact_url

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

GIT_TIMEOUT = 120.0
SWAP_SUFFIXES = (".swp", ".swx", ".swo", ".tmp", ".bak", "~")
Stop = Callable[[], None]


class SourceError(ReconcilerError):
    """The manifests could not be fetched."""


@dataclass(frozen=True)
class Snapshot:
    """Manifests at one revision: paths to load, and the revision (None for a directory)."""

    paths: tuple[Path, ...]
    revision: str | None
    # where file names are shown from: a git checkout's folder, so an error reads
    # `deploy/app.yaml:3:1`, the place in the repository, not in the clone's cache
    shown_from: Path | None = None

    def shown(self, file: str) -> str:
        """`file` as the user knows it (relative to the repository for git)."""
        if self.shown_from is None:
            return file
        try:
            return Path(file).relative_to(self.shown_from).as_posix()
        except ValueError:
            return file


class Source(Protocol):
    def describe(self) -> str: ...
    async def sync(self) -> Snapshot: ...
    def watch(self, on_change: Callable[[], None]) -> Stop: ...


def is_manifest_event(root: Path, event: FileSystemEvent) -> bool:
    """Whether a file event can change the manifests (not an editor's swap or temp file)."""
    paths = [event.src_path, getattr(event, "dest_path", "") or ""]
    for raw in paths:
        if not raw:
            continue
        path = Path(str(raw))
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            continue
        if not parts or any(p.startswith(".") for p in parts):
            continue
        name = parts[-1]
        if name.endswith(SWAP_SUFFIXES) or (name.startswith("#") and name.endswith("#")):
            continue
        if name.endswith((".yaml", ".yml")) or event.is_directory:
            return True
    return False


@dataclass(frozen=True)
class DirectorySource:
    path: Path

    def describe(self) -> str:
        return str(self.path)

    async def sync(self) -> Snapshot:
        return Snapshot((self.path,), None)

    def watch(self, on_change: Callable[[], None]) -> Stop:
        """Call `on_change` (from the observer's thread) on every manifest file event."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        root = self.path.resolve()
        root.mkdir(parents=True, exist_ok=True)

        class Events(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                if is_manifest_event(root, event):
                    on_change()

        observer = Observer()
        observer.schedule(Events(), str(root), recursive=True)
        observer.daemon = True
        observer.start()

        def stop() -> None:
            observer.stop()
            observer.join(5)

        return stop


class GitSource:
    """A branch of a git repository, cloned into `cache_root`."""

    def __init__(self, url: str, branch: str, cache_root: Path, subpath: str = "") -> None:
        """`subpath`: the folder inside the repository that holds the manifests (`deploy/`)."""
        inside = Path(subpath)
        if inside.is_absolute() or ".." in inside.parts:
            raise SourceError(f"--git-path {subpath}: must be a folder inside the repository")
        self.url = url
        self.branch = branch
        self.subpath = inside
        digest = hashlib.sha256(f"{url}#{branch}".encode()).hexdigest()[:16]
        self.checkout = cache_root / f"git-{digest}"
        self._lock = asyncio.Lock()

    def watch(self, on_change: Callable[[], None]) -> Stop:
        return lambda: None  # nothing to watch: the service polls on its interval

    def describe(self) -> str:
        """The URL without its credentials (`https://***@host/...`), the branch, the folder."""
        where = f"#{self.branch}"
        if self.subpath.parts:
            where += f":{self.subpath.as_posix()}"
        return f"{redact_url(self.url, keep_path=True)}{where}"

    def _scrub(self, text: str) -> str:
        """`text` (git's own words) without the URL's credentials, however git quoted them."""
        parts = urlsplit(self.url)
        text = text.replace(self.url, redact_url(self.url, keep_path=True))
        for secret in (parts.password, parts.username):
            if secret:
                text = text.replace(secret, HIDDEN).replace(quote(secret, safe=""), HIDDEN)
        return text

    async def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "echo"}
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SourceError(f"git {args[0]} of {self.describe()} timed out") from None
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip().splitlines()
            reason = self._scrub(detail[-1]) if detail else f"exit code {proc.returncode}"
            raise SourceError(f"git {args[0]} of {self.describe()} failed: {reason}")
        return out.decode().strip()

    async def sync(self) -> Snapshot:
        async with self._lock:
            if not (self.checkout / ".git").is_dir():
                self.checkout.parent.mkdir(parents=True, exist_ok=True)
                await self._git(
                    "clone",
                    "--quiet",
                    "--no-tags",
                    "--single-branch",
                    "--branch",
                    self.branch,
                    "--",
                    self.url,
                    str(self.checkout),
                )
            else:
                await self._git(
                    "fetch", "--quiet", "--no-tags", "origin", self.branch, cwd=self.checkout
                )
                await self._git(
                    "checkout", "--quiet", "--force", "--detach", "FETCH_HEAD", cwd=self.checkout
                )
            revision = await self._git("rev-parse", "HEAD", cwd=self.checkout)
            root = self.checkout / self.subpath
            if not root.is_dir():
                raise SourceError(
                    f"--git-path {self.subpath.as_posix()}: no such folder in "
                    f"{self.describe()} at {revision[:12]}"
                )
            return Snapshot((root,), revision, shown_from=self.checkout)
