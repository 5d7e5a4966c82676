"""Command line of the leaderboard: ``python -m llmrl_bench.leaderboard <command> ...``.

Exit codes: 0 success, 1 the submission failed (one line per failure on stdout), 2 bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from llmrl_bench.leaderboard.tracks import TRACKS_PATH, TrackError, load_tracks


def _tracks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracks", type=Path, default=None, help=f"track file (default {TRACKS_PATH})")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m llmrl_bench.leaderboard", description=__doc__.splitlines()[0])
    commands = main.add_subparsers(dest="command", required=True)

    tracks = commands.add_parser("tracks", help="list the tracks and the sweep that makes a submission")
    tracks.add_argument("--agent", default="<agent>", help="agent option for the printed sweep command")
    _tracks_option(tracks)

    pack = commands.add_parser("pack", help="bundle a results dir's runs into a submission")
    pack.add_argument("results_dir", type=Path)
    pack.add_argument("--track", required=True)
    pack.add_argument("--out", type=Path, required=True, help="new folder, or an archive ending in .tar.gz")
    pack.add_argument("--name", required=True, help="the entry's name (plain text)")
    pack.add_argument("--authors", required=True, help="comma-separated")
    pack.add_argument("--url", default="", help="paper or code, http(s)")
    pack.add_argument("--date", default="", help="YYYY-MM-DD (default: today, UTC)")
    pack.add_argument("--description", default="")
    pack.add_argument("--id", default=None, help="slug naming the details page (default: from --name)")
    pack.add_argument("--agent", default=None, help="only runs of this agent")
    pack.add_argument("--repr", default=None, help="only runs of this representation")
    pack.add_argument("--sweep", default=None, help="only runs of this sweep")
    _tracks_option(pack)

    validate = commands.add_parser("validate", help="check a submission folder or archive; one line per failure")
    validate.add_argument("submission", type=Path)
    validate.add_argument("--incoming", action="store_true", help="from outside: a verification.json in it is a failure")
    _tracks_option(validate)

    unpack = commands.add_parser("unpack", help="check every member of an archive, then extract its folder")
    unpack.add_argument("archive", type=Path)
    unpack.add_argument("--into", type=Path, default=None, help="parent folder (default: the archive's)")

    verify = commands.add_parser("verify", help="re-evaluate every run, re-train a sample, write the record beside the folder")
    verify.add_argument("submission", type=Path)
    from llmrl_bench.leaderboard.verify import DEFAULT_MEMORY_GB, DEFAULT_RETRAIN, DEFAULT_TIMEOUT_S

    verify.add_argument("--retrain", type=int, default=DEFAULT_RETRAIN, help=f"runs to re-train: the best claimed one and random others (default {DEFAULT_RETRAIN})")
    verify.add_argument("--seed", type=int, default=None, help="seed of the random sample (default: from os.urandom; recorded)")
    verify.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help=f"wall-clock limit of the re-runs in seconds (default {DEFAULT_TIMEOUT_S})")
    verify.add_argument("--memory-gb", type=float, default=DEFAULT_MEMORY_GB, help=f"address-space limit of the re-runs (default {DEFAULT_MEMORY_GB:g})")
    _tracks_option(verify)

    build = commands.add_parser("build", help="merge the accepted submissions into the leaderboard")
    build.add_argument("--root", type=Path, default=Path("leaderboard"), help="holds submissions/ (default leaderboard)")
    build.add_argument("--out", type=Path, default=None, help="output folder (default <root>/site)")
    build.add_argument("--allow-unverified", action="store_true", help="also list valid submissions that verify has not passed")
    _tracks_option(build)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return COMMANDS[args.command](args)
    except TrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _tracks(args) -> int:
    for name, track in load_tracks(args.tracks).items():
        print(f"{name}: {track.description}\n  protocol: {track.protocol()}\n  sweep:    {track.sweep_command(args.agent)}")
    return 0


def _pack(args) -> int:
    from llmrl_bench.leaderboard.pack import Metadata, PackError, pack

    metadata = Metadata(
        name=args.name, authors=[a.strip() for a in args.authors.split(",") if a.strip()],
        url=args.url, date=args.date, description=args.description,
    )
    try:
        out, notes = pack(args.results_dir, args.track, args.out, metadata, args.agent, args.repr, args.sweep, args.id, args.tracks)
    except PackError as error:
        for line in error.lines:
            print(f"FAIL {line}")
        return 1
    for note in notes:
        print(note)
    print(f"packed {out}")
    return 0


def _validate(args) -> int:
    from llmrl_bench.leaderboard.validate import validate

    report = validate(args.submission, args.tracks, incoming=args.incoming)
    for line in report.failures:
        print(f"FAIL {line}")
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if not report.ok:
        print(f"invalid: {len(report.failures)} failure(s) in {args.submission}", file=sys.stderr)
        return 1
    state = "verified" if report.verified else "not verified"
    print(f"valid: {report.submission['id']} (track {report.track.name}, {len(report.runs)} runs, "
          f"{report.submission['code']['agent']}/{report.submission['code']['repr']}, {state})")
    return 0


def _unpack(args) -> int:
    from llmrl_bench.leaderboard.bundle import SubmissionError, unpack

    try:
        folder = unpack(args.archive, args.into if args.into is not None else args.archive.parent)
    except SubmissionError as error:
        for line in error.problems:
            print(f"FAIL {line}")
        return 1
    print(f"unpacked {folder}")
    return 0


def _verify(args) -> int:
    from llmrl_bench.leaderboard.verify import VerifyError, verify

    if args.retrain < 1 or (args.seed is not None and args.seed < 0) or args.timeout <= 0 or args.memory_gb <= 0:
        print(f"error: --retrain {args.retrain}, --seed {args.seed}, --timeout {args.timeout}, --memory-gb {args.memory_gb}: "
              "allowed are --retrain >= 1, --seed >= 0, positive limits", file=sys.stderr)
        return 2
    try:
        outcome = verify(args.submission, args.retrain, args.seed, args.tracks, echo=print, timeout_s=args.timeout, memory_gb=args.memory_gb)
    except VerifyError as error:
        for line in error.lines:
            print(f"FAIL {line}")
        return 1
    for line in outcome.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in outcome.lines:
        print(f"FAIL {line}")
    record = outcome.record
    print(f"{'verified' if outcome.verified else 'NOT verified'}: {args.submission} ({len(record['re_evaluated'])} runs re-evaluated, "
          f"{len(record['retrained'])} re-trained, {record['tolerance']['mode']} tolerance; wrote {outcome.path})")
    return 0 if outcome.verified else 1


def _build(args) -> int:
    from llmrl_bench.leaderboard.build import build

    result = build(args.root, args.out, args.tracks, args.allow_unverified)
    for line in result.skipped:
        print(line, file=sys.stderr)
    for path in result.written:
        print(f"wrote {path}")
    print(f"{len(result.entries)} submission(s) on the leaderboard")
    return 0


COMMANDS = {"tracks": _tracks, "pack": _pack, "validate": _validate, "unpack": _unpack, "verify": _verify, "build": _build}

if __name__ == "__main__":
    sys.exit(main())
