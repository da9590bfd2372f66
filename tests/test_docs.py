"""README.md and docs/*.md cite only what exists (tools/doc_check.py): files, tests, `./dev`
commands, their operations and options, stack config keys, relative links and their sections;
and the configuration reference documents every key the model has. A planted bad reference of
each kind is found."""

from __future__ import annotations

from pathlib import Path

from tools.doc_check import all_problems, anchors, check, config_keys, undocumented_keys

PLANTED = """# A page

## Running it

See `tests/test_nothing_here.py` and `tests/test_docs.py::test_no_such_test`, but also
`tests/test_docs.py::test_the_docs_cite_only_what_exists` and `infra/config_model.py`.

```sh
./dev demo --keep-running
./dev deploy
./dev demo --no-such-option
./dev rehearse teleport
./dev rehearse scale
```

Set `nodes.count` and `nodes.colour`; `jetstream.connectTimeoutSeconds` and `jetstream.*`
exist, `app.imagePullPolicy` does not. [Back](../README.md), [up](#running-it),
[nowhere](#walking-it), [gone](missing.md), [the quorum](operations.md#jetstream-quorum),
[no such part](operations.md#teleporting).
"""


def test_the_docs_cite_only_what_exists() -> None:
    problems = all_problems()
    assert [str(p) for p in problems] == []


def test_a_planted_bad_reference_of_each_kind_is_found() -> None:
    found = [p.what for p in check("docs/planted.md", PLANTED)]
    assert found == [
        "no file tests/test_nothing_here.py",
        "tests/test_docs.py has no test test_no_such_test",
        "no stack config key nodes.colour",
        "no stack config key app.imagePullPolicy",
        "./dev has no command 'deploy' (it has bench, contexts, control, demo, down, lock, "
        "offline, rehearse, test)",
        "./dev demo has no option --no-such-option",
        "./dev rehearse has no operation 'teleport'",
        "link to a missing section #walking-it",
        "link to a missing file missing.md",
        "link to a missing section operations.md#teleporting",
    ]


def test_every_config_key_is_documented_and_a_missing_one_is_found() -> None:
    configuration = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert undocumented_keys(configuration) == []
    assert "pki.issuingGeneration" in config_keys()
    without = "\n".join(
        line for line in configuration.splitlines() if "`pki.issuingGeneration`" not in line
    )
    assert undocumented_keys(without) == ["pki.issuingGeneration"]


def test_anchors_are_what_github_makes_of_headings() -> None:
    text = "# Top\n## Reload, not restart\n### What it costs, roughly\n```\n# not a heading\n```\n"
    assert anchors(text) == {"top", "reload-not-restart", "what-it-costs-roughly"}
