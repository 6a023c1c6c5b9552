"""The README and docs/ stay true to the repo: every script, file, setting and
relative link they name exists, every docs/ page is linked from the README,
the README stays short, and no note of the day ("since that run ...") is left."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, *PAGES]
MAX_README_LINES = 250

# Folders and top-level files a path in the docs may start with. timelines/ holds
# what the lab writes at run time (not in git), so paths under it are not checked.
REPO_FOLDERS = ("consumer", "producer", "dashboard", "rabbitmq", "scripts", "tests", "docs", ".ci")
REPO_FILES = ("compose.yaml", "compose.cluster.yaml", ".env", ".gitattributes", "pyproject.toml", "README.md")
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
        if (first in REPO_FOLDERS and "/" in word) or word in REPO_FILES:
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
