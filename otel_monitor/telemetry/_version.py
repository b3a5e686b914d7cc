"""The app's version (``service.version``): given, or detected once at start-up.

Precedence: the ``service_version`` setting, else ``service.version`` in
``OTEL_RESOURCE_ATTRIBUTES`` (``resource_attributes``), else detected: the git commit of the
checkout the app runs from (read from ``.git`` without running git: ``HEAD``, the ref it names,
``packed-refs``; worktrees and submodules through their ``gitdir:`` file), else the version of the
installed distribution named like the app's top-level package, else ``unknown``.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from ..settings import Settings

__all__ = ["UNKNOWN", "detect_version", "git_commit", "distribution_version", "module_root", "with_version"]

UNKNOWN = "unknown"
#: characters of the commit id shown (git's own short ids are 7 to 12)
_SHORT = 12
_MAX_DEPTH = 32


def _read(path: str, limit: int = 4096) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(limit).strip()
    except OSError:
        return None


def _git_dir(start: str) -> str | None:
    """The ``.git`` directory of the checkout holding ``start`` (following a ``gitdir:`` file)."""
    path = os.path.abspath(start)
    for _ in range(_MAX_DEPTH):
        candidate = os.path.join(path, ".git")
        if os.path.isdir(candidate):
            return candidate
        if os.path.isfile(candidate):
            text = _read(candidate) or ""
            if text.startswith("gitdir:"):
                target = text[len("gitdir:") :].strip()
                return target if os.path.isabs(target) else os.path.normpath(os.path.join(path, target))
            return None
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def git_commit(start: str) -> str | None:
    """The short commit id checked out in the repository holding ``start``; None when there is none."""
    git_dir = _git_dir(start)
    if git_dir is None:
        return None
    head = _read(os.path.join(git_dir, "HEAD"))
    if not head:
        return None
    if _is_sha(head):  # a detached HEAD (a deploy of a tag or commit)
        return head[:_SHORT]
    if not head.startswith("ref:"):
        return None
    ref = head[4:].strip()
    if ".." in ref.split("/"):
        return None
    # A worktree keeps HEAD to itself and shares refs through ``commondir``.
    common = _read(os.path.join(git_dir, "commondir"))
    dirs = [git_dir]
    if common:
        dirs.append(common if os.path.isabs(common) else os.path.normpath(os.path.join(git_dir, common)))
    for directory in dirs:
        value = _read(os.path.join(directory, ref))
        if value and _is_sha(value):
            return value[:_SHORT]
    for directory in dirs:
        packed = _read(os.path.join(directory, "packed-refs"), 1 << 22) or ""
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _is_sha(sha):
                return sha[:_SHORT]
    return None


def distribution_version(module_name: str | None) -> str | None:
    """The installed version of the distribution named like ``module_name``'s top-level package.

    ``shop.app`` -> the distribution ``shop`` (or ``shop`` spelled with ``-`` for ``_``). Not a
    scan of every installed distribution's files (hundreds of milliseconds at start-up).
    """
    if not module_name or module_name == "__main__":
        return None
    top = module_name.split(".")[0]
    from importlib import metadata

    for name in dict.fromkeys((top, top.replace("_", "-"))):
        try:
            return metadata.version(name)
        except (metadata.PackageNotFoundError, ValueError):
            continue
    return None


def detect_version(root: str | None, module_name: str | None) -> str:
    """``root``'s git commit, else ``module_name``'s distribution version, else ``unknown``."""
    if root:
        commit = git_commit(root)
        if commit:
            return commit
    return distribution_version(module_name) or UNKNOWN


def module_root(module_name: str | None) -> str | None:
    """The directory of an imported module's file (where a checkout is looked for)."""
    module = sys.modules.get(module_name or "")
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else None


def with_version(settings: Settings, root: str | None, module_name: str | None) -> Settings:
    """``settings`` with ``service_version`` resolved (see the module); detection runs only when needed."""
    if settings.service_version:
        return settings
    given = settings.resource_attributes.get("service.version")
    version = str(given) if given else detect_version(root, module_name)
    resolved = dataclasses.replace(settings, service_version=version)
    object.__setattr__(resolved, "_sources", {**getattr(settings, "_sources", {}), "service_version": "detected"})
    return resolved
