"""check-worker.sh --class: the check run for each student's folder in turn (python -m
checker, in containers unless --on-host), with the lab's workers stopped once for the
class. Writes, in OUT: results.csv (a row per student, a column per check), summary.md,
junit.xml (a test case per student and check), manifest.json (what was checked: each
file's hash, the client library, the lab's commit, the time) and, per student,
students/NAME/ with the check's output, its verdicts and its timeline.

python -m checker.classroom --class DIR --out OUT [--copies N] [--quick] [--strict]
    [--on-host] -- COMMAND..."""

import argparse
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

from .checks import TITLES

CHECKS = ["1", "2", "3", "4", "5b", "5a"]
MAX_FILES, MAX_BYTES = 200, 5_000_000  # hashed per student, at most
STUDENT_SECONDS = 300  # one student's check, at most (the check itself gives up after 240 s)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="check-worker.sh --class")
    parser.add_argument("--class", dest="folder", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--copies", default="2")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--on-host", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return args


def named_file(command):
    """The file the command names: the program itself when it is a path (./worker), else its
    first argument that is not an option and looks like a file (worker.py in `python worker.py`,
    worker.go in `go run worker.go`); None when none does (then no folder is reported missing)."""
    if "/" in command[0]:
        return command[0]
    return next((arg for arg in command[1:] if not arg.startswith("-") and ("." in arg or "/" in arg)), None)


def student_name(folder):
    """The folder's name as a file name and a cell: letters, digits, '-', '_' (others become '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", folder.name)[:64].lstrip("-_") or "student"


def file_hashes(folder):
    """{relative path: sha256} of the student's files (bounded), the folder as checked."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        if len(hashes) >= MAX_FILES:
            break
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_BYTES:
            if "node_modules" not in path.parts and "__pycache__" not in path.parts:
                hashes[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def check_one(folder, out, args):
    """One student's check: {check number: verdict} (as the check wrote them) and its exit status."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / "verdicts.json"
    command = [sys.executable, "-m", "checker", "--copies", args.copies, "--name", "run", "--report", str(report)]
    command += [*(["--quick"] if args.quick else []), *(["--strict"] if args.strict else [])]
    command += [*([] if args.on_host else ["--container"]), "--", *args.command]
    env = {**os.environ, "CHECK_FROM": str(folder), "TIMELINES_DIR": str(out)}
    with (
        (out / "output.txt").open("w") as output,
        subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env) as check,
    ):
        try:
            check.wait(STUDENT_SECONDS)
        except subprocess.TimeoutExpired:
            output.write(f"\nthe check took over {STUDENT_SECONDS} s: stopped\n")
        finally:  # a timeout, or the class run stopped: the check ends its copies and cleans up
            if check.poll() is None:
                check.send_signal(signal.SIGTERM)
                check.wait()
    if not report.exists():
        return {}, 1
    result = json.loads(report.read_text())
    return {verdict["number"]: verdict for verdict in result["verdicts"]}, result["status"]


def missing(name_of_file):
    """SKIP for each required check of a student who handed in no such file."""
    seen, fix = f"missing: no {name_of_file} in the folder", f"hand in {name_of_file}"
    return {n: {"number": n, "title": TITLES[n], "status": "SKIP", "seen": seen, "fix": fix} for n in CHECKS[:4]}


def required(args):
    return CHECKS if args.strict else CHECKS[:4]


def write_csv(path, rows, numbers):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", *[f"check {n}" for n in numbers], "result"])
        for name, verdicts, result in rows:
            writer.writerow([name, *[verdicts.get(n, {}).get("status", "") for n in numbers], result])


def write_junit(path, rows, numbers, needed):
    suites = ElementTree.Element("testsuites", name="check-worker")
    for name, verdicts, _result in rows:
        suite = ElementTree.SubElement(suites, "testsuite", name=name)
        failures = 0
        for number in numbers:
            verdict = verdicts.get(number)
            if verdict is None:
                continue
            case = ElementTree.SubElement(suite, "testcase", classname=name, name=f"{number}. {verdict['title']}")
            detail = verdict["seen"] + (f"\nFix: {verdict['fix']}" if verdict["fix"] else "")
            if verdict["status"] == "FAIL" or (verdict["status"] == "SKIP" and number in needed):
                failures += 1
                failure = ElementTree.SubElement(case, "failure", message=verdict["seen"][:200], type=verdict["status"])
                failure.text = detail
            elif verdict["status"] in ("SKIP", "WARN"):
                ElementTree.SubElement(case, "skipped" if verdict["status"] == "SKIP" else "system-out").text = detail
        suite.set("tests", str(len(suite)))
        suite.set("failures", str(failures))
    ElementTree.ElementTree(suites).write(path, encoding="unicode", xml_declaration=True)


def write_summary(path, rows, numbers, started):
    passed = sum(result == "passed" for _name, _verdicts, result in rows)
    lines = [f"# check-worker: {passed} of {len(rows)} students passed", "",
             f"Checked {started} UTC. Columns: the checks (5a and 5b are warnings unless --strict).", "",
             "| student | " + " | ".join(numbers) + " | result |", "|---|" + "---|" * (len(numbers) + 1)]  # fmt: skip
    for name, verdicts, result in rows:
        cells = [verdicts.get(n, {}).get("status", "") for n in numbers]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {result} |")
    lines += ["", "## What failed, and the fix", ""]
    for name, verdicts, _result in rows:
        for number in numbers:
            verdict = verdicts.get(number)
            if verdict and verdict["status"] in ("FAIL", "WARN"):
                seen = verdict["seen"].replace("|", "\\|")
                lines.append(f"- **{name}**, {number} ({verdict['status']}): {seen}. Fix: {verdict['fix']}")
    path.write_text("\n".join(lines) + "\n")


def lab_commit():
    """The lab's commit, and whether files differ from it."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                             check=False).stdout.strip()  # fmt: skip
    return (commit + (" with uncommitted changes" if changed else "")) or "unknown (not a git checkout)"


def time_left(seconds):
    return f"about {seconds / 60:.0f} min left" if seconds >= 90 else f"about {seconds:.0f} s left"


def library_version(args):
    if args.on_host:
        import pika  # noqa: PLC0415  (the host's, which the copies may not use: said so)

        return f"pika {pika.__version__} on this machine (the students' command may use another)"
    from .sandbox import client_library  # noqa: PLC0415

    return client_library(args.command)


def stop(number, _frame):
    raise KeyboardInterrupt(signal.Signals(number).name)


def main(argv=None):
    args = parse_args(argv)
    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), stop)
    folder, out = Path(args.folder), Path(args.out)
    students = sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not students:
        print(f"check-worker.sh: {folder} has no student folder in it", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    needed, wanted = required(args), named_file(args.command)
    numbers = CHECKS[:4] if args.quick else CHECKS
    rows, manifest, times = [], {}, []
    for index, student in enumerate(students, start=1):
        name, began = student_name(student), time.monotonic()
        if wanted and not (student / wanted).is_file():
            verdicts, result = missing(wanted), f"missing {wanted}"
        else:
            verdicts, _status = check_one(student.resolve(), out / "students" / name, args)
            failed = [n for n in needed if verdicts.get(n, {}).get("status") != "PASS"]
            result = (
                "passed" if not failed else ("not passed: " + ", ".join(failed) if verdicts else "check did not run")
            )
        rows.append((name, verdicts, result))
        manifest[name] = {"folder": str(student.resolve()), "files": file_hashes(student)}
        times.append(time.monotonic() - began)
        left = (len(students) - index) * sum(times) / len(times)
        shown = " ".join(f"{n}:{verdicts.get(n, {}).get('status', '-')}" for n in numbers)
        print(f"[{index}/{len(students)}] {name}: {shown} — {result} ({times[-1]:.0f} s; {time_left(left)})",
              flush=True)  # fmt: skip
    write_csv(out / "results.csv", rows, numbers)
    write_junit(out / "junit.xml", rows, numbers, needed)
    write_summary(out / "summary.md", rows, numbers, started)
    (out / "manifest.json").write_text(json.dumps({
        "checked": started + " UTC", "lab_commit": lab_commit(), "command": args.command,
        "client_library": library_version(args), "in_containers": not args.on_host, "students": manifest,
    }, indent=2))  # fmt: skip
    passed = sum(result == "passed" for _name, _verdicts, result in rows)
    print(f"\n{passed} of {len(rows)} students passed. Written: {out.resolve()}/results.csv, summary.md, junit.xml, "
          "manifest.json, students/")  # fmt: skip
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ncheck-worker.sh: the class run was stopped; the student being checked was cleaned up after",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
