from __future__ import annotations

from collector.config.source import load_yaml


def test_positions_are_recorded_for_every_key() -> None:
    text = "inputs:\n  app:\n    type: counting\n    batches: 3\n"
    loaded = load_yaml(text, "c.yaml", environ={})
    assert loaded.issues == []
    assert loaded.data == {"inputs": {"app": {"type": "counting", "batches": 3}}}
    assert loaded.source_map.locate(("inputs", "app", "batches")) == (4, 5)
    # An unwritten path resolves to its nearest written ancestor.
    assert loaded.source_map.locate(("inputs", "app", "nope", 0)) == (2, 3)


def test_substitution_with_defaults_and_retyping() -> None:
    text = 'a: ${PORT:-8080}\nb: "${PORT:-8080}"\nc: pre-${NAME}-post\nd: $${LITERAL}\ne: ${EMPTY:-fallback}\n'
    loaded = load_yaml(text, "c.yaml", environ={"NAME": "x", "EMPTY": ""})
    assert loaded.issues == []
    assert loaded.data == {"a": 8080, "b": "8080", "c": "pre-x-post", "d": "${LITERAL}", "e": "fallback"}


def test_unset_variable_is_an_issue_at_its_line() -> None:
    loaded = load_yaml("x: 1\ny: ${MISSING}\n", "c.yaml", environ={})
    assert len(loaded.issues) == 1
    issue = loaded.issues[0]
    assert (issue.line, issue.key_path) == (2, "y")
    assert "MISSING" in issue.message and "${MISSING:-value}" in (issue.hint or "")


def test_file_substitution_reads_secrets(tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    loaded = load_yaml(f"token: ${{file:{secret}}}\n", "c.yaml", environ={})
    assert loaded.data == {"token": "s3cr3t"}


def test_duplicate_keys_are_reported() -> None:
    loaded = load_yaml("a: 1\na: 2\n", "c.yaml", environ={})
    assert [i.message for i in loaded.issues] == ["duplicate key `a`"]
    assert loaded.issues[0].line == 2


def test_invalid_yaml_has_a_position() -> None:
    loaded = load_yaml("a: [1, 2\nb: 3\n", "c.yaml", environ={})
    assert loaded.data is None
    assert loaded.issues[0].line is not None
    assert loaded.issues[0].message.startswith("invalid YAML")
