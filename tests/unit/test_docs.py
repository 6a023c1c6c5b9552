"""The README and docs/ stay true to the repo: every script, file, folder, setting
and relative link they name exists, every students' page is linked from the
README and the maintainers' pages once, architecture.md lists every module and
no other, every duration the docs give a script is its --help's "Takes:", the
README stays short, and no note of the day ("since that run ...") is left. The
repo's own lists stay true too: pyproject.toml's modules, and the folders
doctor.sh checks for Windows line endings. Each kind of check has a test that
shows it fails on the stale item it is there to catch."""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))  # the students'
MAINTAINERS = ROOT / "docs" / "maintainers"
MAINTAINER_PAGES = sorted(MAINTAINERS.glob("*.md"))
DOCUMENTS = [README, *PAGES, *MAINTAINER_PAGES]
MAX_README_LINES = 250
TRACKED = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()

# Folders and top-level files a path in the docs may start with: the repo's own, and
# what the lab and the tests write at run time (not in git: paths under them are not checked).
REPO_FOLDERS = tuple(sorted({path.split("/", 1)[0] for path in TRACKED if "/" in path}))
RUNTIME_FOLDERS = ("timelines", "artifacts", "check-worker-report", "students")  # what the lab writes
NOT_FOLDERS = ("rabbitmq-lab", "s", "actions")  # an image's name (rabbitmq-lab/broker); sed's s/\r$//; actions/checkout
REPO_FILES = ("compose.yaml", "compose.cluster.yaml", ".env", ".gitattributes", "pyproject.toml", "README.md")
# What architecture.md lists, one row each: the code of the images and of the host's programs.
MODULE_FOLDERS = ("consumer", "producer", "dashboard", "lab", "checker", "labctl", "bench")
# Variables the lab reads from the environment that are not lines of .env.
ENVIRONMENT = ("LAB_WAIT_SECONDS", "PYTHON_IMAGE", "RABBITMQ_IMAGE", "LAB_IMAGE_TAG", "TIMELINES_DIR", "RABBITMQ_HOSTS")
NOT_SETTINGS = ("PRECONDITION_FAILED", "NAME", "PYTHONUNBUFFERED")  # an AMQP error; `NAME=default`; Python's own
# Notes of the day belong in commit messages, not in the docs.
DATED_NOTES = (
    "since that run",
    "since then",
    "previous version",
    "tried by hand",
    "as of today",
    "this morning",
    "yesterday",
)
SAMPLE_LABEL = re.compile(r"Sample output \(RabbitMQ \d+\.\d+\.\d+, \d{4}-\d{2}-\d{2}\)")


def name(path):
    return str(path.relative_to(ROOT))


def without_code_blocks(text):
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def code_spans(text):
    return re.findall(r"`([^`\n]+)`", without_code_blocks(text))


def links(text):
    """The targets of [text](target) and ![alt](target), outside code blocks."""
    return re.findall(r"\]\(([^)\s]+)\)", without_code_blocks(text))


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    headings = [line for line in without_code_blocks(path.read_text()).splitlines() if line.startswith("#")]
    return {slug(heading.lstrip("#")) for heading in headings}


def env_settings():
    """NAME of every NAME=value line of .env, commented out or not."""
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (ROOT / ".env").read_text(), re.MULTILINE))


def repo_paths(span):
    """The words of a code span that name a file or folder of the repo."""
    for each in span.split():
        word = each.strip(",;:()'\"")
        first = word.split("/", 1)[0]
        if (first in REPO_FOLDERS and first not in RUNTIME_FOLDERS and "/" in word) or word in REPO_FILES:
            yield word


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_every_script_named_exists(document):
    scripts = set(re.findall(r"\bscripts/[\w.-]+\.(?:sh|py)\b", document.read_text()))
    missing = sorted(script for script in scripts if "NAME" not in script and not (ROOT / script).is_file())
    assert missing == [], f"{name(document)} names scripts that do not exist"


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_every_file_named_exists(document):
    missing = []
    for span in code_spans(document.read_text()):
        for path in repo_paths(span):
            pattern = re.sub(r"NAME|<[^>]*>", "*", path)  # scripts/demo-NAME.sh: some demo
            found = any(ROOT.glob(pattern.rstrip("/"))) if "*" in pattern else (ROOT / path).exists()
            if not found:
                missing.append(path)
    assert missing == [], f"{name(document)} names files that do not exist"


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_every_setting_named_is_in_env_or_read_by_the_lab(document):
    text = document.read_text()
    named = set()
    for span in code_spans(text):  # `SECONDS_PER_DOT`, `PREFETCH=0 docker compose up ...`
        if match := re.fullmatch(r"([A-Z][A-Z0-9]*_[A-Z0-9_]+)|([A-Z][A-Z0-9_]+)=.*", span):
            named.add(match[1] or match[2])
    for assignments in re.findall(r"^\$ ((?:[A-Z][A-Z0-9_]+=\S+ )+)", text, re.MULTILINE):  # in console blocks
        named.update(re.findall(r"([A-Z][A-Z0-9_]+)=", assignments))
    unknown = sorted(named - env_settings() - set(ENVIRONMENT) - set(NOT_SETTINGS))
    assert unknown == [], f"{name(document)} names settings that .env does not have"


def test_the_environment_variables_the_docs_name_are_read_by_the_lab():
    code = "\n".join(
        path.read_text()
        for pattern in ("compose*.yaml", "scripts/*.sh", "*/Dockerfile", "*/*.py", "rabbitmq/*.sh")
        for path in ROOT.glob(pattern)
    )
    unread = [variable for variable in ENVIRONMENT if variable not in code]
    assert unread == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_every_relative_link_resolves(document):
    broken = []
    for target in links(document.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert broken == [], f"{name(document)} has broken links"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README.read_text())}
    unlinked = [name(page) for page in PAGES if page.resolve() not in linked]
    assert unlinked == []


def test_the_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move a section to docs/"


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_each_page_starts_with_what_the_reader_will_learn(page):
    lines = page.read_text().splitlines()
    assert lines[0].startswith("# "), "a page starts with its title"
    first = next(line for line in lines[1:] if line.strip())
    assert not first.startswith(("#", "```", "|", ">", "-", "!")), "then a sentence on what it teaches"


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_no_notes_of_the_day(document):
    text = document.read_text().lower()
    found = [phrase for phrase in DATED_NOTES if phrase in text]
    assert found == [], f"{name(document)}: notes of the day belong in commit messages"


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_sample_output_names_its_rabbitmq_version_and_date(document):
    text = document.read_text()
    unlabelled = [line for line in text.splitlines() if "sample output" in line.lower()
                  and not SAMPLE_LABEL.search(line)]  # fmt: skip
    assert unlabelled == []


def test_the_readme_names_the_rabbitmq_the_figures_come_from():
    series = re.search(r"ARG RABBITMQ_IMAGE=(\S+)", (ROOT / "rabbitmq" / "Dockerfile").read_text())[1]
    readme = " ".join(README.read_text().split())
    assert f"RabbitMQ 4.3.6 (Erlang/OTP 29.1.2), the series `{series}` pulls" in readme


# --- Folders -------------------------------------------------------------------


def folder_problems(text, folders=REPO_FOLDERS):
    """Relative paths in TEXT's code spans whose first folder is not the repo's (nor
    written at run time), and folders (`name/`) that do not exist."""
    problems = []
    for span in code_spans(text):
        for each in span.split():
            word = each.strip(",;:()'\"")
            if not re.fullmatch(r"\.?[a-z][\w.-]*/\S*", word) or "://" in word:
                continue
            first = word.split("/", 1)[0]
            if first in NOT_FOLDERS or first in RUNTIME_FOLDERS:
                continue
            if first not in folders or (word.endswith("/") and "*" not in word and not (ROOT / word).is_dir()):
                problems.append(word)
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_every_folder_named_exists(document):
    assert folder_problems(document.read_text()) == [], f"{name(document)} names folders that do not exist"


def test_the_folder_check_fails_on_a_folder_that_is_gone():
    assert folder_problems("the benchmark lives in `benchmarks/run.py` and `tests/helpers/`") == [
        "benchmarks/run.py",
        "tests/helpers/",
    ]


def tree_problems(readme, folders=REPO_FOLDERS, scripts=None):
    """The README's tree ("What is in the repo"): every folder of the repo and every
    script in scripts/ is in it, and every name in it exists."""
    scripts = sorted(path.name for path in (ROOT / "scripts").glob("*.sh")) if scripts is None else scripts
    tree = re.search(r"^## What is in the repo\n.*?^```\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)[1]
    named = re.findall(r"[├└]── (\S+)", tree)
    problems = [f"not in the tree: {folder}/" for folder in folders if f"{folder}/" not in named]
    problems += [f"not in the tree: scripts/{script}" for script in scripts if script not in tree]
    problems += [f"in the tree, not in the repo: {each}" for each in named if not (ROOT / each).exists()]
    return problems


def test_the_readme_tree_shows_every_folder_and_script():
    assert tree_problems(README.read_text()) == []


def test_the_tree_check_fails_on_a_tree_without_lab_or_a_script():
    stale = "## What is in the repo\n\n```\n.\n├── consumer/   send.sh, doctor.sh\n├── old/\n```\n"
    assert tree_problems(stale, folders=("consumer", "lab"), scripts=["send.sh", "bench.sh"]) == [
        "not in the tree: lab/",
        "not in the tree: scripts/bench.sh",
        "in the tree, not in the repo: old/",
    ]


# --- Modules -------------------------------------------------------------------


def modules():
    """The modules architecture.md has a row for: the code of each image and program."""
    found = {path for path in TRACKED if re.fullmatch(rf"({'|'.join(MODULE_FOLDERS)})/[\w/]+\.py", path)}
    found |= {path for path in TRACKED if re.fullmatch(r"dashboard/static/\w+\.js", path)}
    return {path for path in found if not path.endswith("__init__.py")}


def module_problems(architecture, tree_modules):
    pattern = rf"({'|'.join(MODULE_FOLDERS)})/[\w/]+\.(py|js)"
    listed = {span for span in code_spans(architecture) if re.fullmatch(pattern, span)}
    return [f"listed, not in the tree: {each}" for each in sorted(listed - tree_modules)] + [
        f"in the tree, not listed: {each}" for each in sorted(tree_modules - listed)
    ]


def test_architecture_lists_every_module_and_no_other():
    assert module_problems((ROOT / "docs" / "architecture.md").read_text(), modules()) == []


def test_the_module_check_fails_on_a_deleted_module_listed_or_a_new_one_left_out():
    stale = "| `producer/queues.py` | gone |\n| `lab/schema.py` | the schema |"
    assert module_problems(stale, {"lab/schema.py", "lab/tasks.py"}) == [
        "listed, not in the tree: producer/queues.py",
        "in the tree, not listed: lab/tasks.py",
    ]


def known_modules():
    """Every module and package a tracked file makes: stems of .py files, and folders."""
    return {Path(path).stem for path in TRACKED if path.endswith(".py")} | set(REPO_FOLDERS)


def pyproject_problems(pyproject, known):
    listed = tomllib.loads(pyproject)["tool"]["ruff"]["lint"]["isort"]["known-first-party"]
    return [module for module in listed if module not in known]


def test_pyproject_names_no_deleted_module():
    assert pyproject_problems((ROOT / "pyproject.toml").read_text(), known_modules()) == []


def test_the_pyproject_check_fails_on_a_deleted_module():
    stale = '[tool.ruff.lint.isort]\nknown-first-party = ["records", "queues"]\n'
    assert pyproject_problems(stale, {"records"}) == ["queues"]


# --- Durations -----------------------------------------------------------------


def takes(script):
    """The "Takes:" line of SCRIPT's --help (scripts/SCRIPT.sh)."""
    help_text = subprocess.run([ROOT / "scripts" / script, "--help"], capture_output=True, text=True, timeout=60).stdout
    return re.search(r"^Takes: (.*)$", help_text, re.MULTILINE)[1]


def durations(text):
    """The durations TEXT gives: "about ten", "about 40" (of "about ten minutes", "about 40 s")."""
    return re.findall(r"\babout (\w+) (?:s\b|seconds?|minutes?)", text)


def duration_problems(text, takes_of):
    """Durations the docs give a script in a console line's comment
    (`$ scripts/bench.sh   # about ten minutes`) that its "Takes:" line does not say."""
    problems = []
    for script, comment in re.findall(r"^\$ scripts/([\w.-]+\.sh)\b[^#\n]*#(.*)$", text, re.MULTILINE):
        stated = takes_of(script)
        problems += [f"{script}: about {each}" for each in durations(comment) if f"about {each}" not in stated]
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_every_duration_the_docs_give_a_script_is_its_help(document):
    assert duration_problems(document.read_text(), takes) == []


def help_problems(help_text):
    """Durations a script's --help gives outside its "Takes:" line that the line does not say."""
    line = re.search(r"^Takes: (.*)$", help_text, re.MULTILINE)[1]
    rest = help_text.replace(line, "")
    return [f"about {each}" for each in durations(rest) if f"about {each}" not in line]


@pytest.mark.parametrize("script", sorted(path.name for path in (ROOT / "scripts").glob("*.sh")))
def test_every_script_states_one_duration(script):
    help_text = subprocess.run([ROOT / "scripts" / script, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert help_problems(help_text) == []


def test_the_duration_checks_fail_on_eight_minutes_against_ten():
    stale = "Usage: scripts/bench.sh    (about eight minutes)\nTakes: about ten minutes.\n"
    assert help_problems(stale) == ["about eight"]
    page = "```console\n$ scripts/bench.sh             # about eight minutes; a stack of its own\n```\n"
    assert duration_problems(page, lambda script: "about ten minutes (--cluster: about six)") == [
        "bench.sh: about eight"
    ]


# --- The maintainers' pages ------------------------------------------------------


def test_the_maintainers_pages_are_linked_once_from_the_readme():
    linked = [target for target in links(README.read_text()) if target.startswith("docs/maintainers/")]
    assert linked == ["docs/maintainers/README.md"]
    index = links((MAINTAINERS / "README.md").read_text())
    assert sorted(page.name for page in MAINTAINER_PAGES if page.name != "README.md") == sorted(
        target for target in index if "/" not in target
    )


# --- doctor.sh's line-ending check -------------------------------------------------


def copied_folders():
    """The folders the images copy from: the first folder of each COPY source (the
    Dockerfile's own folder for a source without one: its build context)."""
    folders = set()
    for dockerfile in ROOT.glob("*/Dockerfile"):
        for line in re.findall(r"^COPY (.*)$", dockerfile.read_text(), re.MULTILINE):
            *sources, _destination = [word for word in line.split() if not word.startswith("--")]
            folders |= {source.split("/", 1)[0] if "/" in source else dockerfile.parent.name for source in sources}
    return folders


def line_ending_problems(doctor, folders):
    command = re.search(r'with_cr="\$\(grep (.*?)\)"', doctor, re.DOTALL)[1]
    checked = {word.split("/", 1)[0] for word in command.replace("\\\n", " ").split()}
    return sorted(folder for folder in folders if folder not in checked)


def test_doctor_checks_the_line_endings_of_every_folder_the_containers_copy():
    assert {"consumer", "producer", "dashboard", "lab", "rabbitmq"} <= copied_folders()
    assert line_ending_problems((ROOT / "scripts" / "doctor.sh").read_text(), copied_folders()) == []


def test_the_line_ending_check_fails_on_a_folder_left_out():
    stale = 'with_cr="$(grep -l $CR .env compose.yaml scripts/* rabbitmq/* consumer/* producer/* 2>/dev/null || true)"'
    assert line_ending_problems(stale, {"consumer", "lab", "dashboard"}) == ["dashboard", "lab"]


def test_ci_runs_exactly_the_test_command_the_readme_gives():
    tests = README.read_text().split("\n## Tests\n", 1)[1]
    (command,) = re.findall(r"^\$ (.+)$", tests.split("```console\n", 1)[1].split("```", 1)[0], re.M)
    steps = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert steps[-1] == command == "scripts/test.sh"
