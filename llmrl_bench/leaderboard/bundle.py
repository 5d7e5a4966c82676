"""A submission on disk: its layout, checksums, and safe reading of folders and archives.

Layout (one folder, or a ``.tar.gz`` holding that one folder)::

    <id>/submission.json              # metadata, track, code identity, versions, manifest
    <id>/summary.json                 # aggregates as packed (checked, never trusted)
    <id>/runs/<run_id>/result.json    # the run's record (llmrl_bench/schema/result-v1.json)
    <id>/runs/<run_id>/episodes.npz   # its per-episode training data
    <id>/runs/<run_id>/config.yaml    # its resolved config
    <id>/verification.json            # written by ``verify`` only

The manifest (``submission.json``'s ``files``) holds the SHA-256 of every file but
``submission.json`` and ``verification.json``. Links, devices, absolute names and ``..``
are refused before anything is read or extracted.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
from pathlib import Path, PurePosixPath

SUBMISSION_FILE = "submission.json"
SUMMARY_FILE = "summary.json"
VERIFICATION_FILE = "verification.json"
CONFIG_FILE = "config.yaml"
RUNS_DIR = "runs"
#: Files outside the manifest: the manifest itself and the maintainer's verification record.
UNLISTED_FILES = (SUBMISSION_FILE, VERIFICATION_FILE)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
#: Refuse archives that would unpack to more than this (a gzip bomb stops here); a
#: 30-run classic submission is a few MB.
MAX_ARCHIVE_BYTES = 512 * 1024**2
MAX_ARCHIVE_MEMBERS = 100_000
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class SubmissionError(ValueError):
    """A submission that cannot be read safely; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def is_archive(path: str | Path) -> bool:
    return str(path).endswith(ARCHIVE_SUFFIXES)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_problem(name: str) -> str | None:
    """Why a relative path from a manifest or archive is unsafe, or ``None``."""
    if not name:
        return "an empty name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if "\\" in name:
        return "a backslash in its name"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "a '..' component that leaves the submission"
    if not all(SAFE_NAME.match(part) for part in parts if part != "."):
        return "characters other than A-Z a-z 0-9 . _ -"
    return None


def scan_folder(root: Path) -> tuple[list[str], list[str]]:
    """The regular files under ``root`` (posix paths relative to it) and one line per unsafe entry.

    Symlinks are never followed: each one is a problem naming its target and whether it
    points outside the submission; so is anything that is not a file or a folder.
    """
    files: list[str] = []
    problems: list[str] = []
    root_real = root.resolve()

    def visit(folder: Path) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                rel = path.relative_to(root).as_posix()
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISLNK(mode):
                    target = os.readlink(path)
                    resolved = (path.parent / target).resolve()
                    outside = resolved != root_real and root_real not in resolved.parents
                    where = "outside the submission" if outside else "inside the submission"
                    problems.append(f"{rel}: is a symlink to {target!r}, {where}; submissions hold no links")
                elif stat.S_ISDIR(mode):
                    visit(path)
                elif stat.S_ISREG(mode):
                    files.append(rel)
                else:
                    problems.append(f"{rel}: is not a regular file or folder (device, fifo or socket)")

    visit(root)
    return files, problems


def _member_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    problem = path_problem(name)
    if problem is not None:
        return f"archive member {name!r} has {problem}"
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hard link"
        target = member.linkname
        top = (PurePosixPath(name).parts or ("",))[0]
        # A symlink resolves from its own folder, a hard link from the archive's root.
        start = posixpath.dirname(name) if member.issym() else ""
        landing = posixpath.normpath(posixpath.join(start, target))
        outside = target.startswith("/") or landing == ".." or landing.startswith("../") or PurePosixPath(landing).parts[:1] != (top,)
        where = "outside the submission" if outside else "inside the submission"
        return f"archive member {name!r} is a {kind} to {target!r}, {where}; submissions hold no links"
    if not (member.isfile() or member.isdir()):
        return f"archive member {name!r} is not a regular file or folder"
    return None


def check_archive(path: Path) -> tuple[list[tarfile.TarInfo], str, list[str]]:
    """The members of ``path``, their one top folder, and one line per unsafe member."""
    problems: list[str] = []
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = archive.getmembers()
    except (OSError, tarfile.TarError, EOFError) as error:
        return [], "", [f"{path.name}: not a readable .tar.gz archive: {error}"]
    if len(members) > MAX_ARCHIVE_MEMBERS:
        problems.append(f"{path.name}: {len(members)} members, more than {MAX_ARCHIVE_MEMBERS}")
    total = sum(member.size for member in members if member.isfile())
    if total > MAX_ARCHIVE_BYTES:
        problems.append(f"{path.name}: unpacks to {total} bytes, more than {MAX_ARCHIVE_BYTES}")
    for member in members:
        problem = _member_problem(member)
        if problem is not None:
            problems.append(problem)
    tops = {PurePosixPath(m.name).parts[0] for m in members if not path_problem(m.name) and PurePosixPath(m.name).parts}
    tops.discard(".")
    if not problems and len(tops) != 1:
        problems.append(f"{path.name}: must hold exactly one top folder (the submission); found {sorted(tops) or 'none'}")
    top = next(iter(tops)) if len(tops) == 1 else ""
    if top and any(PurePosixPath(m.name).parts == (top,) and not m.isdir() for m in members):
        problems.append(f"{path.name}: its top entry {top!r} must be a folder")
    return members, top, problems


def unpack(archive: Path, into: Path) -> Path:
    """Check every member of ``archive``, then extract its one folder to ``into/<top>``.

    Nothing is written if any member is unsafe or ``into/<top>`` exists; raises
    :class:`SubmissionError` naming each problem. Extraction also uses tarfile's
    ``data`` filter, so a member that slipped past the checks still cannot leave the folder.
    """
    members, top, problems = check_archive(archive)
    if problems:
        raise SubmissionError(problems)
    target = into / top
    if target.exists() or target.is_symlink():
        raise SubmissionError([f"{target}: exists; unpack into an empty place (--into)"])
    into.mkdir(parents=True, exist_ok=True)
    target.mkdir()
    try:
        with tarfile.open(archive, "r:gz") as handle:
            handle.extractall(into, members=members, filter="data")
    except BaseException:
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        raise
    return target
