"""Score a class's homework (`make grade SUBMISSIONS=DIR`).

    python -m vizlib.course.grade SUBMISSIONS [--out build/grades] [--weights weights.json]
                                  [--timeout 300] [--concepts 06,saliency,...]

SUBMISSIONS is one student's copy of the student release (a folder holding vizlib/) or a
folder of such copies, one per student, named after the student.

Each concept (notebooks/NN_name.ipynb, NN from 01) is graded by the instructor's
tests/test_name.py, copied with the shared helpers (conftest.py and the other non-test
files of tests/) into a temporary folder, so a student who edits the tests gains nothing.
They run in one subprocess per student and concept under a time limit, with the student's
copy on PYTHONPATH and a guard that imports vizlib from that copy or not at all (never an
installed or the instructor's vizlib). At the limit the subprocess's whole process group
is killed, so an endless loop, a crash or a broken import costs that concept only.

A concept's tests are those that fail on a fresh student release: a test that passes with
every region empty (one that checks bad input, say) grades nothing. Points are passed /
total of those tests times the concept's weight: 1, unless the weights file (a JSON object
such as {"saliency": 2, "13_gram_texture": 0.5}) says otherwise. No notebook is run.

Writes grades.csv and grades.json (per student and concept: points, passed/total, timed
out, the first error line) and summary.csv (per concept across the class: mean points, how
many full marks), and prints both tables.
"""

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vizlib.config import REPO_ROOT, progress
from vizlib.course import student_release

# Concept 04's regions are split over two modules, each with its own test file (see the README).
EXTRA_TESTS = {"patches": ("receptive_field",)}
GUARD = "vizlib_grade_guard"
GUARD_SOURCE = '''"""Loaded by the grader before the tests: vizlib comes from the submission, or not at all."""
import json
import os
import sys
from importlib.machinery import PathFinder
from pathlib import Path

SUBMISSION = Path(os.environ["VIZLIB_GRADE_SUBMISSION"]).resolve()


class SubmissionOnly:
    """Finds vizlib and its modules in the submission only, so a missing module is missing
    rather than taken from an installed copy of the course."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] != "vizlib":
            return None
        spec = PathFinder.find_spec(name, [str(SUBMISSION)] if name == "vizlib" else path)
        if spec is None or spec.origin is None or not Path(spec.origin).resolve().is_relative_to(SUBMISSION):
            raise ModuleNotFoundError(f"No module named {name!r} in the submission", name=name)
        return spec


sys.meta_path.insert(0, SubmissionOnly)


def pytest_sessionfinish(session):
    package = sys.modules.get("vizlib")
    Path(os.environ["VIZLIB_GRADE_REPORT"]).write_text(json.dumps(getattr(package, "__file__", None)))
'''
EXCEPTION_LINE = re.compile(r"^E\s+((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b.*)$")
FILE_LINE = re.compile(r'^E\s+File "(.+)", line (\d+)')


@dataclass(frozen=True)
class Concept:
    key: str              # the notebook's stem, e.g. "06_saliency"
    name: str             # the module and test file name, e.g. "saliency"
    test_files: tuple     # test file names in tests/


@dataclass(frozen=True)
class Run:
    outcomes: dict        # test id -> "passed", "failed" or "skipped"
    timed_out: bool
    error: str            # the first error line, "" when none
    seconds: float
    vizlib: str | None    # the vizlib package the tests imported


def graded_concepts(course=REPO_ROOT):
    """Every concept the grader scores (a notebook from 01, its module and test files), in notebook order."""
    course = Path(course)
    concepts = []
    for notebook in sorted((course / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if notebook.name.startswith("00"):
            continue
        name = notebook.stem[3:]
        files = tuple(f"test_{module}.py" for module in (name, *EXTRA_TESTS.get(name, ())))
        missing = [file for file in files if not (course / "tests" / file).exists()]
        if missing:
            raise ValueError(f"{notebook.name} has no tests/{missing[0]} to grade it with")
        concepts.append(Concept(notebook.stem, name, files))
    return concepts


def select(concepts, wanted):
    """The concepts named in `wanted` (stems, names or numbers: "06_saliency", "saliency", "06"), in course order."""
    if wanted is None:
        return list(concepts)
    wanted = [str(key).strip() for key in wanted]
    unknown = [key for key in wanted if not any(key in (c.key, c.name, c.key[:2]) for c in concepts)]
    if unknown:
        raise ValueError(f"unknown concept {unknown[0]!r}; the concepts: {', '.join(c.key for c in concepts)}")
    return [c for c in concepts if {c.key, c.name, c.key[:2]} & set(wanted)]


def load_weights(path, concepts):
    """{concept key: weight} for `concepts` from a JSON object keyed by concept stem or name; 1 for a concept
    it leaves out."""
    weights = {c.key: 1.0 for c in concepts}
    if path is None:
        return weights
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"weights file {path}: {error}") from None
    if not isinstance(given, dict):
        raise ValueError(f"weights file {path}: expected a JSON object such as {{\"saliency\": 2}}")
    known = {alias: c.key for c in concepts for alias in (c.key, c.name)}
    for key, weight in given.items():
        if key not in known:
            raise ValueError(f"weights file {path}: unknown concept {key!r}; the concepts: {', '.join(weights)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"weights file {path}: the weight of {key!r} must be a number >= 0, got {weight!r}")
        weights[known[key]] = float(weight)
    return weights


def find_submissions(path):
    """[(student, copy)]: `path` itself when it holds vizlib/, else each folder in it."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"SUBMISSIONS={path} is not a folder: give one student's copy of the course "
                         f"or a folder of copies, one per student")
    if (path / "vizlib").is_dir():
        return [(path.resolve().name, path.resolve())]
    copies = [(p.name, p.resolve()) for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if not copies:
        raise ValueError(f"SUBMISSIONS={path} holds no student copy: expected vizlib/ in it, or one folder per student")
    return copies


@contextmanager
def instructor_tests(course, concepts):
    """A temporary folder with the instructor's tests of `concepts` and the shared helpers (in tests/), the
    guard plugin (in plugins/) and room for the reports."""
    with tempfile.TemporaryDirectory(prefix="vizlib-grade-") as scratch:
        folder = Path(scratch)
        _copy_tests(course, concepts, folder)
        yield folder


def _copy_tests(course, concepts, into):
    tests = into / "tests"
    tests.mkdir(parents=True)
    for helper in (Path(course) / "tests").glob("*.py"):
        if not helper.name.startswith("test_"):
            shutil.copy(helper, tests / helper.name)
    for concept in concepts:
        for file in concept.test_files:
            shutil.copy(Path(course) / "tests" / file, tests / file)
    (into / "pytest.ini").write_text("[pytest]\n")
    (into / "plugins").mkdir()
    (into / "plugins" / f"{GUARD}.py").write_text(GUARD_SOURCE)
    (into / "reports").mkdir()


def _outcomes(report):
    """test id -> "passed", "failed" or "skipped", and the first failure's text, from a junit xml report."""
    outcomes, first = {}, None
    for case in ElementTree.parse(report).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        problems = [child for child in case if child.tag in ("failure", "error")]
        if problems:
            outcomes[test] = "failed"
            first = first or problems[0]
        else:
            outcomes[test] = "skipped" if case.find("skipped") is not None else "passed"
    return outcomes, first


def _error_line(lines, copy, fallback):
    """The exception a failure ended in, one line (a SyntaxError with its file, relative to the copy, and line),
    from pytest's "E" lines; `fallback` when there is none."""
    where = None
    for line in lines:
        where = FILE_LINE.match(line) or where
        found = EXCEPTION_LINE.match(line)
        if found:
            text = found.group(1)
            if text.startswith(("SyntaxError", "IndentationError")) and where:
                file = where.group(1).removeprefix(f"{copy}{os.sep}")
                text += f" ({file}, line {where.group(2)})"
            return text
    return fallback


def run_concept(copy, concept, workdir, timeout):
    """Run a concept's instructor tests against the vizlib in `copy`, in a subprocess of its own; returns Run."""
    copy, workdir = Path(copy).resolve(), Path(workdir)
    reports = Path(tempfile.mkdtemp(prefix=f"{concept.name}-", dir=workdir / "reports"))
    report, log, imported = reports / "junit.xml", reports / "log.txt", reports / "vizlib.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(workdir / "plugins"), str(copy)]), VIZLIB_FAST="1",
               VIZLIB_PROGRESS="0", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1",
               VIZLIB_GRADE_SUBMISSION=str(copy), VIZLIB_GRADE_REPORT=str(imported))
    command = [sys.executable, "-m", "pytest", "-q", "-p", GUARD, "-p", "no:cacheprovider", "-p", "no:nbval",
               "-c", str(workdir / "pytest.ini"), "--rootdir", str(workdir), f"--junitxml={report}",
               *(str(workdir / "tests" / file) for file in concept.test_files)]
    start = time.monotonic()
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=reports, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            process.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:                             # the group: whatever the tests started dies with them
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    seconds = time.monotonic() - start
    vizlib = json.loads(imported.read_text()) if imported.exists() else None
    if timed_out:
        return Run({}, True, f"timed out after {timeout:g} s", seconds, vizlib)
    if not report.exists():
        lines = log.read_text(errors="replace").strip().splitlines() or [""]
        fallback = f"pytest ended with exit code {process.returncode} and no report: {lines[-1]}"
        return Run({}, False, _error_line(lines, copy, fallback), seconds, vizlib)
    outcomes, first = _outcomes(report)
    error = "" if first is None else _error_line((first.text or "").splitlines(), copy,
                                                  (first.get("message") or "failed").splitlines()[0])
    return Run(outcomes, False, error, seconds, vizlib)


def graded_tests(course=REPO_ROOT, concepts=None, *, timeout=300):
    """{concept key: [test ids]}: the tests of each concept that fail on a fresh release of `course`."""
    concepts = graded_concepts(course) if concepts is None else concepts
    with instructor_tests(course, concepts) as scratch:
        student_release.build(scratch / "release", source=course)
        graded = {}
        for concept in concepts:
            run = run_concept(scratch / "release", concept, scratch, timeout)
            graded[concept.key] = sorted(test for test, outcome in run.outcomes.items() if outcome == "failed")
            if run.timed_out or not graded[concept.key]:
                raise RuntimeError(f"{concept.key}: no test fails on a fresh release, so none grades the homework"
                                   f" ({run.error or 'every test passes with the regions empty'})")
    return graded


def score(run, graded, weight):
    """(points, passed, total, the first error line) of one run, counting the graded tests only."""
    passed = sum(run.outcomes.get(test) == "passed" for test in graded)
    return weight * passed / len(graded), passed, len(graded), run.error


def grade(submissions, out_dir, *, course=REPO_ROOT, concepts=None, weights=None, timeout=300, graded=None,
          show_progress=None):
    """Grade every student copy in `submissions` (see the module docstring); writes the tables into `out_dir`
    and returns (rows, summary). `graded` ({concept key: test ids}, from graded_tests) saves computing it again."""
    if not timeout > 0:
        raise ValueError(f"the time limit must be a positive number of seconds, got {timeout!r}")
    students = find_submissions(submissions)
    every = graded_concepts(course)
    concepts, weight = select(every, concepts), load_weights(weights, every)
    if graded is None:
        graded = graded_tests(course, concepts, timeout=timeout)
    missing = [c.key for c in concepts if c.key not in graded]
    if missing:
        raise ValueError(f"no graded tests given for {', '.join(missing)}")
    rows = []
    with instructor_tests(course, concepts) as scratch:
        bar = progress(students, desc="grading", unit="student", enabled=show_progress)
        for student, copy in bar:
            for concept in concepts:
                bar.set_postfix_str(f"{student}: {concept.key}")
                if (copy / "vizlib").is_dir():
                    run = run_concept(copy, concept, scratch, timeout)
                else:
                    run = Run({}, False, "no vizlib/ folder in this submission", 0.0, None)
                points, passed, total, error = score(run, graded[concept.key], weight[concept.key])
                rows.append(dict(student=student, concept=concept.key, weight=weight[concept.key],
                                 points=round(points, 3), passed=passed, total=total, timed_out=run.timed_out,
                                 seconds=round(run.seconds, 1), error=error, vizlib=run.vizlib))
    summary = [dict(concept=c.key, weight=weight[c.key], students=len(students),
                    mean_points=round(sum(r["points"] for r in mine) / len(mine), 3),
                    full_marks=sum(r["passed"] == r["total"] for r in mine),
                    timed_out=sum(r["timed_out"] for r in mine))
               for c in concepts for mine in [[r for r in rows if r["concept"] == c.key]]]
    _write(Path(out_dir), rows, summary)
    return rows, summary


def _write(out_dir, rows, summary):
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table, columns in (("grades.csv", rows, [k for k in rows[0] if k != "vizlib"]),
                                 ("summary.csv", summary, list(summary[0]))):
        with open(out_dir / name, "w", newline="") as file:
            writer = csv.DictWriter(file, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(table)
    totals = {}
    for row in rows:
        points, out_of = totals.get(row["student"], (0.0, 0.0))
        totals[row["student"]] = (points + row["points"], out_of + row["weight"])
    students = {name: dict(points=round(points, 3), out_of=out_of) for name, (points, out_of) in totals.items()}
    (out_dir / "grades.json").write_text(json.dumps(dict(rows=rows, students=students, summary=summary), indent=1))


def format_table(table, columns):
    """A plain-text table of dicts, one row each, columns padded to their widest entry."""
    cells = [[str(column) for column in columns]] + [[str(row[column]) for column in columns] for row in table]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", help="one student's copy of the course, or a folder of copies")
    parser.add_argument("--out", default=str(REPO_ROOT / "build" / "grades"), help="where the tables go")
    parser.add_argument("--weights", help="JSON object of concept weights, e.g. {\"saliency\": 2}")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per student and concept (default 300)")
    parser.add_argument("--concepts", help="comma-separated concepts to grade (default: all)")
    args = parser.parse_args(argv)
    try:
        rows, summary = grade(args.submissions, args.out, weights=args.weights, timeout=args.timeout,
                              concepts=args.concepts.split(",") if args.concepts else None)
    except ValueError as error:
        parser.error(str(error))
    for row in rows:
        row["passed/total"] = f"{row['passed']}/{row['total']}"
    print(format_table(rows, ["student", "concept", "points", "passed/total", "timed_out", "error"]))
    print()
    print(format_table(summary, ["concept", "weight", "students", "mean_points", "full_marks", "timed_out"]))
    print(f"\ntables in {args.out}: grades.csv, grades.json, summary.csv")


if __name__ == "__main__":
    main()
