"""A submission on disk: its layout, checksums, and safe reading of folders and archives.

Layout (one folder, or a ``.tar.gz`` holding that one folder)::

    <id>/submission.json              # metadata, track, code identity, versions, manifest
    <id>/summary.json                 # aggregates as packed (checked, never trusted)
    <id>/runs/<run_id>/result.json    # the run's record (llmrl_bench/schema/result-v1.json)
    <id>/runs/<run_id>/episodes.npz   # its per-episode training data
    <id>/runs/<run_id>/config.yaml    # its resolved config
    <id>/runs/<run_id>/policy.pt      # its final policy (tensors only: torch.load(weights_only=True))
    <id>.verification.json            # beside the folder, written by ``verify`` only

The manifest (``submission.json``'s ``files``) holds the SHA-256 of every file but
``submission.json``. A ``verification.json`` inside the folder is never trusted. Links,
devices, absolute names and ``..`` are refused, and the caps below checked, before anything
is read or extracted; ``.npz`` members are checked from their headers before any array is
allocated.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

SUBMISSION_FILE = "submission.json"
SUMMARY_FILE = "summary.json"
VERIFICATION_FILE = "verification.json"
VERIFICATION_SUFFIX = ".verification.json"
CONFIG_FILE = "config.yaml"
POLICY_FILE = "policy.pt"
RUNS_DIR = "runs"
#: Files outside the manifest: the manifest itself, and a verification record that is ignored.
UNLISTED_FILES = (SUBMISSION_FILE, VERIFICATION_FILE)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
#: Caps, checked from sizes on disk or in archive headers before reading: a 30-run classic
#: submission is a few MB (an LLM head policy is a few MB a run).
MAX_SUBMISSION_BYTES = 512 * 1024**2
MAX_FILE_BYTES = 64 * 1024**2
MAX_FILES = 1000
#: Per array of an ``.npz``, from its header, before it is read.
MAX_ARRAY_BYTES = 64 * 1024**2
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


def verification_path(submission: Path) -> Path:
    """Where ``verify`` writes a submission folder's record: beside it, not inside."""
    return submission.parent / f"{submission.name}{VERIFICATION_SUFFIX}"


def size_problems(sizes: dict[str, int], where: str) -> list[str]:
    """One line per cap that files of these sizes (name -> bytes) break."""
    problems = [f"{name}: {size} bytes, more than the cap of {MAX_FILE_BYTES} per file" for name, size in sorted(sizes.items()) if size > MAX_FILE_BYTES]
    if len(sizes) > MAX_FILES:
        problems.append(f"{where}: {len(sizes)} files, more than the cap of {MAX_FILES}")
    if sum(sizes.values()) > MAX_SUBMISSION_BYTES:
        problems.append(f"{where}: {sum(sizes.values())} bytes in all, more than the cap of {MAX_SUBMISSION_BYTES}")
    return problems


def npz_headers(data: bytes) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``name -> (shape, dtype)`` of every array of an ``.npz``, from the headers only.

    Raises ``ValueError`` naming the member that is not a plain ``.npy`` or breaks
    :data:`MAX_ARRAY_BYTES`; nothing larger than a header is read or allocated.
    """
    headers = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy") or info.file_size > MAX_ARRAY_BYTES + 4096:
                raise ValueError(f"member {info.filename!r} is not an .npy array or unpacks to {info.file_size} bytes, more than the cap of {MAX_ARRAY_BYTES}")
            with archive.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"member {info.filename!r} has .npy format version {version}, not 1.0 or 2.0")
                shape, _, dtype = read_header(handle)
            if dtype.hasobject:
                raise ValueError(f"array {info.filename!r} holds Python objects (pickles)")
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if size > MAX_ARRAY_BYTES:
                raise ValueError(f"array {info.filename!r} of shape {shape} and dtype {dtype} would take {size} bytes, more than the cap of {MAX_ARRAY_BYTES}")
            headers[info.filename[: -len(".npy")]] = (shape, dtype)
    return headers


def scan_folder(root: Path) -> tuple[list[str], list[str]]:
    """The regular files under ``root`` (posix paths relative to it) and one line per unsafe entry.

    Symlinks are never followed: each one is a problem naming its target and whether it
    points outside the submission; so is anything that is not a file or a folder, and
    any size above the caps (read from the file system, never by reading the file).
    """
    files: list[str] = []
    problems: list[str] = []
    sizes: dict[str, int] = {}
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
                    sizes[rel] = entry.stat(follow_symlinks=False).st_size
                else:
                    problems.append(f"{rel}: is not a regular file or folder (device, fifo or socket)")
                if len(files) > MAX_FILES:
                    raise StopIteration

    try:
        visit(root)
    except StopIteration:
        pass  # size_problems names the count
    return files, problems + size_problems(sizes, root.name)


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
    if path.stat().st_size > MAX_SUBMISSION_BYTES:
        return [], "", [f"{path.name}: {path.stat().st_size} bytes, more than the cap of {MAX_SUBMISSION_BYTES}"]
    members: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:  # headers only; stop counting past the cap
                members.append(member)
                if len(members) > MAX_FILES:
                    break
    except (OSError, tarfile.TarError, EOFError) as error:
        return [], "", [f"{path.name}: not a readable .tar.gz archive: {error}"]
    problems += size_problems({member.name: member.size for member in members if member.isfile()}, path.name)
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
