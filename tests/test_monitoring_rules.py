"""The alert rules, proven with the real promtool on the files each stack renders.

For every stack: the rule files the offline preview writes (``render.rule_files``, which
``render_rules`` fills) go into a temporary folder, next to the unit tests of
``tests/monitoring/`` (templates too: ``{{runbook}}`` and the thresholds are filled with the
stack's values, so expected annotations are the stack's); then
``promtool check rules`` and ``promtool test rules`` must pass, and the counts are printed.
Around promtool:

- every alert has a firing case for each of its severities and a non-firing case (an empty
  ``exp_alerts``), except ``Watchdog``, which must fire at every evaluation;
- every rule has a ``severity`` (critical, warning or info; ``none`` for Watchdog alone), a
  ``summary``, a ``description`` and a ``runbook_url`` to its own heading of a page of
  ``docs/runbooks/alerts/`` that exists;
- every metric name an expression reads is in ``components/monitoring/metrics.yaml``;
- seeded faults fail: a threshold outside what the settings accept makes ``promtool test
  rules`` fail, a broken expression ``promtool check rules``, a template without a value the
  renderer, and a runbook link to a missing heading the link check.

promtool comes from Debian's ``prometheus`` package (``scripts/install-monitoring-tools.sh``,
which ``make test`` runs); a machine without it fails these tests, it does not skip them.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.lib.template import TemplateError, fill, placeholders
from components.monitoring import render, rules
from components.settings import StackSettings, parse_settings
from tests.promql import metric_names
from tools.preview import REPO_ROOT
from tools.project import StackConfig
from tools.stacks import stack_names

TESTS_DIR = REPO_ROOT / "tests" / "monitoring"
TEST_SUFFIX = ".test.yml"
METRICS = REPO_ROOT / "components" / "monitoring" / "metrics.yaml"
SEVERITIES = frozenset({"critical", "warning", "info"})
ALWAYS_FIRING = frozenset({"Watchdog"})
"""Alerts that must fire at every evaluation: no non-firing case can exist. Their severity is
``none``, so no severity route catches them (Alertmanager routes them by name)."""
ANNOTATIONS = ("summary", "description", "runbook_url")


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, (
        "promtool missing: scripts/install-monitoring-tools.sh installs it (make test does)"
    )
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def settings_of(config: StackConfig) -> StackSettings:
    return parse_settings(config.stack, config.values)


def unit_test_values(settings: StackSettings) -> dict[str, dict[str, str]]:
    """Each rule file's template values plus its ``{{runbook}}``: what the unit tests use."""
    base = rules.runbook_base(settings.deploy.repository)
    return {
        stem: {**values, "runbook": f"{base}/{stem}.md"}
        for stem, values in rules.template_values(settings.alert_thresholds).items()
    }


def write_stack(folder: Path, files: dict[str, str], settings: StackSettings) -> list[str]:
    """The rendered rule files and the filled unit tests in ``folder``; the tests' names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    values = unit_test_values(settings)
    names = []
    for path in sorted(TESTS_DIR.glob(f"*{TEST_SUFFIX}")):
        stem = path.name.removesuffix(TEST_SUFFIX)
        assert stem in values, f"{path.name}: no rule file {stem}{rules.RULE_SUFFIX}"
        text = path.read_text(encoding="utf-8")
        missing = placeholders(text) - set(values[stem])
        assert not missing, f"{path.name}: placeholders without a value {sorted(missing)}"
        own = {name: values[stem][name] for name in placeholders(text)}
        (folder / path.name).write_text(fill(path.name, text, own), encoding="utf-8")
        names.append(path.name)
    return names


@dataclass(frozen=True)
class Rule:
    file: str
    alert: str
    labels: dict[str, str]
    annotations: dict[str, str]
    expr: str


def parse_rules(files: dict[str, str]) -> list[Rule]:
    found = []
    for name, text in sorted(files.items()):
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                assert "alert" in rule, f"{name}: a recording rule; this folder holds alerts"
                found.append(
                    Rule(
                        name,
                        rule["alert"],
                        rule.get("labels", {}),
                        rule.get("annotations", {}),
                        rule["expr"],
                    )
                )
    return found


@dataclass(frozen=True)
class Cases:
    firing: Counter[tuple[str, str]]
    """(alert, severity) -> firing cases: expected alerts carrying that severity."""
    quiet: Counter[str]
    """alert -> non-firing cases (an empty ``exp_alerts``)."""


def count_cases(folder: Path, names: list[str]) -> Cases:
    firing: Counter[tuple[str, str]] = Counter()
    quiet: Counter[str] = Counter()
    for name in names:
        document = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                expected = case.get("exp_alerts") or []
                if not expected:
                    quiet[case["alertname"]] += 1
                for severity in {alert["exp_labels"].get("severity") for alert in expected}:
                    firing[case["alertname"], str(severity)] += 1
    return Cases(firing, quiet)


def coverage_problems(found: list[Rule], cases: Cases) -> list[str]:
    problems = []
    for alert, severity in sorted(
        {(rule.alert, rule.labels.get("severity", "")) for rule in found}
    ):
        if not cases.firing[alert, severity]:
            problems.append(f"{alert} ({severity}): no firing case")
    for alert in sorted({rule.alert for rule in found} - ALWAYS_FIRING):
        if not cases.quiet[alert]:
            problems.append(f"{alert}: no non-firing case")
    known = {rule.alert for rule in found}
    problems += [f"{alert}: tested but no such alert" for alert in sorted(set(cases.quiet) - known)]
    return problems


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, spaces to dashes, punctuation gone."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.+?)\s*#*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def runbook_problems(found: list[Rule], base: str, root: Path = REPO_ROOT) -> list[str]:
    """Each rule's ``runbook_url`` must be ``<base>/<page>.md#<its alert, lower case>`` with
    that page under ``docs/runbooks/alerts/`` and that heading on it."""
    problems = []
    for rule in found:
        url = rule.annotations.get("runbook_url", "")
        page, _, anchor = url.removeprefix(f"{base}/").partition("#")
        path = root / rules.RUNBOOKS_PATH / page
        if not url.startswith(f"{base}/") or "/" in page or not page.endswith(".md"):
            problems.append(f"{rule.alert}: {url!r} is not a page under {base}/")
        elif not path.is_file():
            problems.append(f"{rule.alert}: {rules.RUNBOOKS_PATH}/{page} does not exist")
        elif anchor != rule.alert.lower():
            problems.append(f"{rule.alert}: links to #{anchor}, not to its own heading")
        elif anchor not in heading_anchors(path.read_text(encoding="utf-8")):
            problems.append(f"{rule.alert}: {rules.RUNBOOKS_PATH}/{page} has no heading #{anchor}")
    return problems


def known_metrics() -> dict[str, str]:
    document = yaml.safe_load(METRICS.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{METRICS}: not a metric: exporter mapping"
    return {str(name): str(exporter) for name, exporter in document.items()}


# ------------------------------------------------------------------------------ fixtures


@dataclass(frozen=True)
class Rendered:
    stack: str
    settings: StackSettings
    folder: Path
    files: dict[str, str]
    tests: list[str]


@pytest.fixture(scope="module", params=stack_names(REPO_ROOT))
def rendered(
    request: pytest.FixtureRequest,
    stack_configs: dict[str, StackConfig],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rendered]:
    stack = str(request.param)
    settings = settings_of(stack_configs[stack])
    prefix = f"{render.RULES_DIR}/"
    files = {
        path.removeprefix(prefix): text
        for path, text in render.rule_files(settings).items()
        if path.startswith(prefix)
    }
    assert files == rules.render_rules(settings)
    folder = tmp_path_factory.mktemp(f"rules-{stack}")
    yield Rendered(stack, settings, folder, files, write_stack(folder, files, settings))


# ------------------------------------------------------------------------------ tests


def test_promtool_checks_the_rules(rendered: Rendered) -> None:
    result = run_promtool("check", "rules", *sorted(rendered.files), cwd=rendered.folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(rendered.files)


def test_promtool_unit_tests_pass_with_a_case_of_each_kind_for_every_alert(
    rendered: Rendered,
) -> None:
    result = run_promtool("test", "rules", *rendered.tests, cwd=rendered.folder)
    assert result.returncode == 0, result.stdout + result.stderr
    found = parse_rules(rendered.files)
    cases = count_cases(rendered.folder, rendered.tests)
    assert coverage_problems(found, cases) == []
    print(
        f"\n{rendered.stack}: {len({r.alert for r in found})} alerts ({len(found)} rules), "
        f"{sum(cases.firing.values())} firing cases, {sum(cases.quiet.values())} non-firing "
        f"cases, in {len(rendered.tests)} promtool test files"
    )


def test_every_rule_has_severity_summary_description_and_its_runbook(rendered: Rendered) -> None:
    found = parse_rules(rendered.files)
    problems = []
    for rule in found:
        severity = rule.labels.get("severity")
        allowed = {"none"} if rule.alert in ALWAYS_FIRING else SEVERITIES
        if severity not in allowed:
            problems.append(f"{rule.alert}: severity {severity!r}, not one of {sorted(allowed)}")
        problems += [
            f"{rule.alert}: no {key}" for key in ANNOTATIONS if not rule.annotations.get(key)
        ]
    base = rules.runbook_base(rendered.settings.deploy.repository)
    assert problems + runbook_problems(found, base) == []


def test_every_metric_is_produced_by_a_listed_exporter(rendered: Rendered) -> None:
    listed = known_metrics()
    unknown = {
        f"{rule.alert}: {name}"
        for rule in parse_rules(rendered.files)
        for name in metric_names(rule.expr)
        if name not in listed
    }
    assert sorted(unknown) == []


def test_metric_list_is_sorted_and_names_exporters() -> None:
    lines = [
        line for line in METRICS.read_text(encoding="utf-8").splitlines() if line[:1].isalpha()
    ]
    names = [line.split(":", 1)[0] for line in lines]
    assert names == sorted(names) and len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*", exporter) for exporter in known_metrics().values())


def test_stacks_differ_only_in_thresholds(stack_configs: dict[str, StackConfig]) -> None:
    """The same alerts, severities and expressions' shapes everywhere: numbers aside, the
    rendered files are the same (staging is never missing an alert prod has)."""
    staging, prod = (rules.render_rules(settings_of(stack_configs[s])) for s in ("staging", "prod"))
    assert staging.keys() == prod.keys()
    digits = re.compile(r"\d+")
    for name in staging:
        assert digits.sub("N", staging[name]) == digits.sub("N", prod[name]), name


def test_thresholds_come_from_settings(stack_configs: dict[str, StackConfig]) -> None:
    settings = settings_of(stack_configs["staging"])
    changed = dataclasses.replace(
        settings,
        alert_thresholds=dataclasses.replace(settings.alert_thresholds, django_latency_p95_ms=1234),
    )
    text = rules.render_rules(changed)["django.yml"]
    assert "* 1000 > 1234" in text and "above 1234 ms" in text


# ------------------------------------------------------------------------------ seeded faults


def test_seeded_threshold_fault_fails_promtool(
    stack_configs: dict[str, StackConfig], tmp_path: Path
) -> None:
    """A memory threshold of 100 % (the settings refuse it) never fires: the firing case fails."""
    settings = settings_of(stack_configs["staging"])
    broken = dataclasses.replace(
        settings,
        alert_thresholds=dataclasses.replace(settings.alert_thresholds, node_memory_percent=100),
    )
    names = write_stack(tmp_path, rules.render_rules(broken), broken)
    result = run_promtool("test", "rules", *names, cwd=tmp_path)
    assert result.returncode == 1
    assert "NodeMemoryHighUtilization" in result.stdout + result.stderr


def test_seeded_expression_fault_fails_promtool_check(
    stack_configs: dict[str, StackConfig], tmp_path: Path
) -> None:
    files = rules.render_rules(settings_of(stack_configs["staging"]))
    (tmp_path / "redis.yml").write_text(files["redis.yml"].replace("redis_up == 0", "redis_up =="))
    result = run_promtool("check", "rules", "redis.yml", cwd=tmp_path)
    assert result.returncode == 1


def test_renderer_refuses_a_placeholder_without_a_value() -> None:
    with pytest.raises(TemplateError, match=r"node\.yml: placeholders without a value \['x'\]"):
        fill("node.yml", "expr: up > {{x}}", {})
    with pytest.raises(TemplateError, match=r"without a placeholder \['y'\]"):
        fill("node.yml", "expr: up > 1", {"y": "2"})


def test_seeded_runbook_faults_are_found(stack_configs: dict[str, StackConfig]) -> None:
    base = "https://github.com/o/r/blob/main/docs/runbooks/alerts"
    rule = Rule("node.yml", "NodeCPUHighUsage", {"severity": "warning"}, {}, "up")

    def problems(url: str) -> list[str]:
        return runbook_problems([dataclasses.replace(rule, annotations={"runbook_url": url})], base)

    assert problems(f"{base}/node.md#nodecpuhighusage") == []
    assert "does not exist" in problems(f"{base}/nodes.md#nodecpuhighusage")[0]
    assert "not to its own heading" in problems(f"{base}/node.md#nodememoryhighutilization")[0]
    assert "no heading" in problems(f"{base}/general.md#nodecpuhighusage")[0]
    assert "not a page" in problems("docs/runbooks/alerts/node.md#nodecpuhighusage")[0]


def test_coverage_check_finds_a_missing_case() -> None:
    found = [
        Rule("x.yml", "A", {"severity": "warning"}, {}, "up"),
        Rule("x.yml", "A", {"severity": "critical"}, {}, "up"),
    ]
    cases = Cases(Counter({("A", "warning"): 1}), Counter())
    assert coverage_problems(found, cases) == [
        "A (critical): no firing case",
        "A: no non-firing case",
    ]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (job) (rate(a_total{x="y"}[5m])) / on (job) b', {"a_total", "b"}),
        ("histogram_quantile(0.95, sum by (le) (rate(c_bucket[5m]))) * 1000 > 2", {"c_bucket"}),
        ("time() - max(d{n='and'}) > 26 * 3600 unless on (n) e or absent(f)", {"d", "e", "f"}),
        ("rate(g[6h] offset 10m) or vector(0)", {"g"}),
        ('{__name__="h", job="x"} and bool i', {"h", "i"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_each_rule_file_has_its_tests_and_runbook() -> None:
    """One unit-test file and one runbook page per rule file, and each page's alert headings
    are exactly that file's alerts: a renamed or removed alert leaves no stale section."""
    stems = {path.name.removesuffix(rules.RULE_SUFFIX) for path in rules.RULES_DIR.glob("*.yml")}
    tested = {path.name.removesuffix(TEST_SUFFIX) for path in TESTS_DIR.glob(f"*{TEST_SUFFIX}")}
    pages = {path.stem for path in (REPO_ROOT / rules.RUNBOOKS_PATH).glob("*.md")}
    assert stems == tested
    assert stems <= pages
    for stem in sorted(stems):
        text = (rules.RULES_DIR / f"{stem}{rules.RULE_SUFFIX}").read_text(encoding="utf-8")
        alerts = set(re.findall(r"^\s*- alert: (\w+)$", text, re.MULTILINE))
        page = (REPO_ROOT / rules.RUNBOOKS_PATH / f"{stem}.md").read_text(encoding="utf-8")
        assert set(re.findall(r"^## (\w+)$", page, re.MULTILINE)) == alerts, stem
