"""URLs shown to people: secret parts removed, commits linked on hosts we know.

A git URL or a notification URL may carry a credential (`https://user:token@host/...`), and a
webhook URL often is one (Slack's `/services/T000/B000/XXXX`). Nothing prints such a URL as is:
`redact_url` keeps the scheme, host and port, and replaces userinfo, path and query with `***`
unless told the path is public (a repository's path is, a webhook's path is not).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

HIDDEN = "***"
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")
_COMMIT_PATHS = {
    "github.com": "/commit/",
    "gitlab.com": "/-/commit/",
    "codeberg.org": "/commit/",
    "bitbucket.org": "/commits/",
}


def redact_url(url: str, *, keep_path: bool = False) -> str:
    """`url` without its credentials; without its path and query too unless `keep_path`."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        scp = _SCP_LIKE.match(url)
        if scp and "://" not in url:  # git@host:owner/repo.git
            path = scp["path"] if keep_path else HIDDEN
            return f"{scp['host']}:{path}"
        return HIDDEN
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username or parts.password:
        netloc = f"{HIDDEN}@{netloc}"
    hidden_path = "/" + HIDDEN if parts.path.strip("/") or parts.query else ""
    path = parts.path if keep_path else hidden_path
    return f"{parts.scheme}://{netloc}{path}"


def repository_web_url(git_url: str) -> str | None:
    """The https address of a repository on a known host, or None."""
    parts = urlsplit(git_url)
    if parts.scheme in ("https", "http", "ssh", "git") and parts.hostname:
        host, path = parts.hostname.lower(), parts.path
    else:
        scp = _SCP_LIKE.match(git_url)
        if not scp or "://" in git_url:
            return None
        host, path = scp["host"].lower(), "/" + scp["path"]
    if host not in _COMMIT_PATHS:
        return None
    path = path.rstrip("/").removesuffix(".git")
    if path.count("/") < 2 or not re.fullmatch(r"[/\w.-]+", path):
        return None
    return f"https://{host}{path}"


def commit_url(git_url: str, revision: str) -> str | None:
    """A link to `revision` on the repository's host, when the host is one we know."""
    web = repository_web_url(git_url)
    if web is None or not re.fullmatch(r"[0-9a-f]{7,64}", revision):
        return None
    host = urlsplit(web).hostname or ""
    return web + _COMMIT_PATHS[host] + revision
