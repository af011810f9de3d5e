"""The grader, on copies of the course whose expected scores are known by construction: a fresh release
(nothing written: 0), the instructor's course (everything: full marks), a release with concept 14 and its
prerequisites restored (those only), an endless loop, a syntax error and a missing module.

Every grading run here covers 01 (filters) and 14 (style transfer), whose tests are among the quickest, and
the tests that grade them are found once, on one fresh release, for the whole module.
"""

import csv
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from vizlib.config import REPO_ROOT
from vizlib.course import grade
from vizlib.course.student_release import RELEASE_MARK, build, marked_regions, region_owner

# They grade copies made from the instructor's course; a student's copy has no answers to grade with.
pytestmark = pytest.mark.skipif((REPO_ROOT / RELEASE_MARK).exists(), reason="needs the instructor's course")
CONCEPTS = ["01", "style_transfer"]


@pytest.fixture(scope="module")
def course_dir(tmp_path_factory):
    """A fresh release, and the graded tests of the two concepts found on one."""
    root = tmp_path_factory.mktemp("grading")
    build(root / "release")
    concepts = grade.select(grade.graded_concepts(), CONCEPTS)
    return root, grade.graded_tests(concepts=concepts, timeout=300)


def copy_of_release(root, name, *, instructor=False):
    """A student's copy: the release, or with `instructor` the release holding the instructor's vizlib."""
    copy = shutil.copytree(root / "release", root / "class" / name)
    if instructor:
        shutil.rmtree(copy / "vizlib")
        shutil.copytree(REPO_ROOT / "vizlib", copy / "vizlib", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def restore(copy, module, owner):
    """Put the instructor's lines of `owner`'s homework region in vizlib/`module` into `copy`."""
    def region(lines):
        text = "".join(lines)
        found = [(b, e) for b, e in marked_regions(lines, module) if region_owner(text, b + 1) == owner]
        assert len(found) == 1, owner
        return found[0]

    mine = (REPO_ROOT / "vizlib" / module).read_text().splitlines(keepends=True)
    path = copy / "vizlib" / module
    theirs = path.read_text().splitlines(keepends=True)
    (b, e), (sb, se) = region(mine), region(theirs)
    path.write_text("".join(theirs[:sb + 1] + mine[b + 1:e] + theirs[se:]))


def by_concept(rows, student):
    return {row["concept"]: row for row in rows if row["student"] == student}


@pytest.fixture(scope="module")
def class_of_three(course_dir):
    """A folder of three copies graded at once, with filters weighing 2: fresh, course, and the course with a
    syntax error in vizlib/optim.py (imported by style_transfer, not by filters)."""
    root, graded = course_dir
    copy_of_release(root, "fresh")
    copy_of_release(root, "course", instructor=True)
    broken = copy_of_release(root, "syntax", instructor=True) / "vizlib" / "optim.py"
    broken.write_text(broken.read_text() + "\ndef unfinished(:\n")
    weights = root / "weights.json"
    weights.write_text(json.dumps({"01_filters": 2}))
    rows, summary = grade.grade(root / "class", root / "grades", concepts=CONCEPTS, weights=weights, graded=graded,
                                show_progress=False)
    return root, graded, rows, summary


def test_a_fresh_release_scores_nothing_and_the_course_full_marks(class_of_three):
    root, graded, rows, _ = class_of_three
    fresh, course = by_concept(rows, "fresh"), by_concept(rows, "course")
    for concept, weight in (("01_filters", 2.0), ("14_style_transfer", 1.0)):
        total = len(graded[concept])
        assert total > 0 and fresh[concept]["total"] == course[concept]["total"] == total
        assert fresh[concept]["passed"] == 0 and fresh[concept]["points"] == 0
        assert "NotImplementedError: homework" in fresh[concept]["error"]
        assert course[concept]["passed"] == total and course[concept]["points"] == weight
        assert course[concept]["error"] == "" and not course[concept]["timed_out"]
    for row in rows:                                 # the tests imported each student's own vizlib
        assert row["vizlib"] == str((root / "class" / row["student"] / "vizlib" / "__init__.py").resolve())


def test_a_syntax_error_costs_the_concepts_that_import_the_module(class_of_three):
    _, graded, rows, _ = class_of_three
    syntax = by_concept(rows, "syntax")
    assert syntax["01_filters"]["passed"] == len(graded["01_filters"]) and syntax["01_filters"]["points"] == 2
    assert syntax["14_style_transfer"]["points"] == 0
    assert syntax["14_style_transfer"]["error"].startswith("SyntaxError")
    assert "(vizlib/optim.py, line" in syntax["14_style_transfer"]["error"]


def test_the_tables_are_written_as_csv_and_json(class_of_three):
    root, _, rows, summary = class_of_three
    with open(root / "grades" / "grades.csv") as file:
        table = list(csv.DictReader(file))
    assert [(r["student"], r["concept"]) for r in table] == [
        (student, concept) for student in ("course", "fresh", "syntax")
        for concept in ("01_filters", "14_style_transfer")]
    assert [float(r["points"]) for r in table] == [row["points"] for row in rows]
    saved = json.loads((root / "grades" / "grades.json").read_text())
    assert saved["rows"] == rows and saved["summary"] == summary
    assert saved["students"]["course"] == {"points": 3.0, "out_of": 3.0}
    assert saved["students"]["fresh"] == {"points": 0.0, "out_of": 3.0}
    assert saved["students"]["syntax"] == {"points": 2.0, "out_of": 3.0}
    # across the class: filters is full in course and syntax, style transfer in course only
    assert [(s["concept"], s["mean_points"], s["full_marks"]) for s in summary] == [
        ("01_filters", round(4 / 3, 3), 2), ("14_style_transfer", round(1 / 3, 3), 1)]
    with open(root / "grades" / "summary.csv") as file:
        assert [r["full_marks"] for r in csv.DictReader(file)] == ["2", "1"]


def test_a_concept_restored_with_its_prerequisites_scores_alone_and_no_module_comes_from_elsewhere(course_dir):
    """14 needs optim.total_variation, gram_texture.gram_matrix and gram_texture.style_loss (the README's
    homework section). filters.py is deleted: the installed course's filters must not stand in for it."""
    root, graded = course_dir
    copy = copy_of_release(root, "restored_14")
    shutil.copy(REPO_ROOT / "vizlib" / "style_transfer.py", copy / "vizlib" / "style_transfer.py")
    restore(copy, "optim.py", "total_variation()")
    restore(copy, "gram_texture.py", "ChannelProducts.forward()")      # gram_matrix
    restore(copy, "gram_texture.py", "style_loss()")
    (copy / "vizlib" / "filters.py").unlink()
    rows, _ = grade.grade(copy, root / "restored", concepts=CONCEPTS, graded=graded, show_progress=False)
    scores = by_concept(rows, "restored_14")
    assert scores["14_style_transfer"]["points"] == 1 and scores["14_style_transfer"]["error"] == ""
    # without the guard the installed course's vizlib.filters would answer the import, with full marks
    assert scores["01_filters"]["points"] == 0
    assert "cannot import name 'filters' from 'vizlib'" in scores["01_filters"]["error"]
    assert str(copy / "vizlib" / "__init__.py") in scores["01_filters"]["error"]


def test_an_endless_loop_times_out_in_its_concept_only(course_dir):
    root, graded = course_dir
    copy = copy_of_release(root, "endless", instructor=True)
    module = copy / "vizlib" / "style_transfer.py"
    lines = module.read_text().splitlines(keepends=True)
    begin = next(b for b, _ in marked_regions(lines, module.name))
    indent = lines[begin][:len(lines[begin]) - len(lines[begin].lstrip())]
    module.write_text("".join(lines[:begin + 1] + [f"{indent}while True:\n{indent}    pass\n"] + lines[begin + 1:]))
    rows, summary = grade.grade(copy, root / "endless-grades", concepts=CONCEPTS, graded=graded, timeout=15,
                                show_progress=False)
    scores = by_concept(rows, "endless")
    assert scores["14_style_transfer"]["timed_out"] and scores["14_style_transfer"]["points"] == 0
    assert scores["14_style_transfer"]["error"] == "timed out after 15 s"
    assert scores["14_style_transfer"]["seconds"] < 45                # the process group is gone, not waited for
    assert not scores["01_filters"]["timed_out"] and scores["01_filters"]["points"] == 1
    assert [s["timed_out"] for s in summary] == [0, 1]


def test_submissions_and_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="time limit must be a positive"):
        grade.grade(tmp_path, tmp_path / "out", timeout=0)
    with pytest.raises(ValueError, match="is not a folder"):
        grade.find_submissions(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="holds no student copy"):
        grade.find_submissions(tmp_path)
    (tmp_path / "ann" / "vizlib").mkdir(parents=True)
    (tmp_path / "bob").mkdir()
    (tmp_path / ".hidden").mkdir()
    assert grade.find_submissions(tmp_path) == [(name, (tmp_path / name).resolve()) for name in ("ann", "bob")]
    assert grade.find_submissions(tmp_path / "ann") == [("ann", (tmp_path / "ann").resolve())]
    concepts = grade.graded_concepts()
    keys = [c.key for c in concepts]
    assert keys == sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))[1:]
    assert dict((c.name, c.test_files) for c in concepts)["patches"] == ("test_patches.py", "test_receptive_field.py")
    assert [c.key for c in grade.select(concepts, ["style_transfer", "06", "01_filters"])] == [
        "01_filters", "06_saliency", "14_style_transfer"]
    with pytest.raises(ValueError, match="unknown concept 'saliencey'"):
        grade.select(concepts, ["saliencey"])
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"saliency": 3, "13_gram_texture": 0.5}))
    loaded = grade.load_weights(weights, concepts)
    assert loaded["06_saliency"] == 3 and loaded["13_gram_texture"] == 0.5 and loaded["01_filters"] == 1
    for bad, message in (({"saliency": -1}, "must be a number >= 0"), ({"nope": 1}, "unknown concept 'nope'"),
                         ([1, 2], "expected a JSON object")):
        weights.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            grade.load_weights(weights, concepts)


def test_the_command_line_and_the_make_target(tmp_path, capsys):
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path / "nowhere")])
    assert "is not a folder" in capsys.readouterr().err
    plan = subprocess.run(["make", "-n", "grade", "SUBMISSIONS=/class", "WEIGHTS=w.json"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert '-m vizlib.course.grade "/class" --out build/grades --weights "w.json"' in plan.stdout
    assert grade.format_table([{"a": 10, "bb": "x"}], ["a", "bb"]).splitlines() == ["a   bb", "10  x"]


def test_a_hang_kills_the_tests_children_and_a_crash_scores_nothing(tmp_path):
    """Tests that never touch vizlib, so no model loads: one leaves a child process and hangs, one crashes."""
    course, pid_file = tmp_path / "course", tmp_path / "child.pid"
    (course / "tests").mkdir(parents=True)
    (course / "tests" / "test_hang.py").write_text(
        "import pathlib, subprocess, time\n\n\ndef test_hang():\n"
        "    child = subprocess.Popen(['sleep', '600'])\n"
        f"    pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))\n"
        "    while True:\n        time.sleep(0.05)\n")
    (course / "tests" / "test_crash.py").write_text(
        "import os, signal\n\n\ndef test_crash():\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    hang = grade.Concept("98_hang", "hang", ("test_hang.py",))
    crash = grade.Concept("99_crash", "crash", ("test_crash.py",))
    (tmp_path / "student" / "vizlib").mkdir(parents=True)
    with grade.instructor_tests(course, [hang, crash]) as work:
        run = grade.run_concept(tmp_path / "student", hang, work, timeout=8)
        crashed = grade.run_concept(tmp_path / "student", crash, work, timeout=60)
    assert run.timed_out and run.outcomes == {} and run.error == "timed out after 8 s"
    child = pid_file.read_text()
    status = Path(f"/proc/{child}/status")
    for _ in range(50):                     # killed with its group; init reaps it soon after
        if not status.exists() or "\nState:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    assert not status.exists() or "\nState:\tZ" in status.read_text(), "the test's child process outlived it"
    assert not crashed.timed_out and crashed.outcomes == {}
    assert crashed.error.startswith("pytest ended with exit code -9 and no report")
    assert grade.score(crashed, ["tests.test_crash::test_crash"], 1.0) == (0.0, 0, 1, crashed.error)
