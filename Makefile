# The course's commands. The first two are the ones a student needs:
#   make lab    set everything up (once) and open the course in JupyterLab
#   make test   set everything up (once) and run all tests, notebooks included
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: setup lab test test-imagenet course bench download course-model style-net student-release grade clean

setup: $(INSTALLED)

# One pip call resolves torch and torchvision together with everything else,
# pinned as a pair by constraints.txt; the import check catches a broken pair.
# JupyterLab is the `lab` extra: the package itself never installs a Jupyter (Colab has its own).
$(INSTALLED): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch torchvision -e ".[test,lab]"
	$(BIN)/python -c "import torch, torchvision.ops; print('torch', torch.__version__, '| torchvision', torchvision.__version__)"
	touch $@

# JupyterLab refuses to start as root (containers, some cloud machines) without --allow-root.
lab: $(INSTALLED)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# ruff first (rules in pyproject.toml): a lint error stops the run in a second, before the twenty minutes of tests.
# Two pytest-xdist workers, a notebook's cells (and a test file's tests) kept together on one (tests/conftest.py).
test: $(INSTALLED)
	$(BIN)/ruff check
	$(BIN)/python -m pytest -n 2

# Every notebook on every torchvision architecture pick_model offers (SqueezeNet 1.1, AlexNet, VGG-16, VGG-19,
# ResNet-18), offline: random stand-in weights in a temporary cache, claims that need training skipped with their
# reason.
test-imagenet: $(INSTALLED)
	$(BIN)/python -m pytest tests/test_imagenet_notebooks.py --imagenet-all -n 2

# Execute every notebook headlessly: executed copies, HTML pages and an index in build/course/.
course: $(INSTALLED)
	$(BIN)/python -m vizlib.course.build_course build/course

# Speed of each technique against a named reference, as ratios (not part of the tests).
bench: $(INSTALLED)
	$(BIN)/python -m benchmarks.run

# With internet: ImageNet weights (SqueezeNet 1.1, AlexNet, VGG-19) and Imagenette 160 px.
download: $(INSTALLED)
	$(BIN)/python -m vizlib.course.download

# Retrain the course model and rewrite vizlib/data/course_model.pt (about 8 minutes on 2 cores).
course-model: $(INSTALLED)
	$(BIN)/python -m vizlib.course.train_course_model

# Retrain the feed-forward style network of notebook 14 into vizlib/data/ (stops after 12 minutes on 2 cores).
style-net: $(INSTALLED)
	OMP_NUM_THREADS=2 $(BIN)/python -m vizlib.course.train_style_net --style hubble_deep_field --minutes 12

# For a course giving homework: a copy with every homework region emptied, in build/student-release/.
student-release: $(INSTALLED)
	$(BIN)/python -m vizlib.course.student_release build/student-release

# Score the class: SUBMISSIONS is one student's copy of the release or a folder of copies. Each concept's
# instructor tests run against each copy's vizlib under a time limit; tables in build/grades/.
# Optional: WEIGHTS=weights.json ({"saliency": 2, ...}), TIMEOUT=seconds per student and concept.
grade: $(INSTALLED)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=DIR [WEIGHTS=FILE] [TIMEOUT=SECONDS]"; exit 2; }
	$(BIN)/python -m vizlib.course.grade "$(SUBMISSIONS)" --out build/grades $(if $(WEIGHTS),--weights "$(WEIGHTS)") $(if $(TIMEOUT),--timeout $(TIMEOUT))

clean:
	rm -rf build
