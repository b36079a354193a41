"""No config error shows a secret's value or a value that came from `${VAR}` substitution (issue 13)."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, Field, SecretStr, model_validator

from collector.api import ALL_KINDS, Processor, ProcessorConfig
from collector.config import ConfigError, parse_config
from collector.config.schema import config_schema
from collector.config.secrets import (
    REDACTED,
    SECRET,
    is_secret_path,
    redact,
    secret_field_paths,
    secret_values,
)
from collector.registry import load_registry
from tests.unit.config.secret_cases import SecretCase, case_config, case_environ, leaked, secret_cases
from tests.unit.fakes import make_registry

REGISTRY = load_registry()
CASES = secret_cases(REGISTRY)


def rejected(text: str, environ: dict[str, str] | None = None) -> tuple[ConfigError, str]:
    """The error for `text`, and everything a user could see of it (text and JSON reports)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", REGISTRY, environ=environ or {})
    shown = info.value.format() + "\n" + json.dumps([i.as_dict() for i in info.value.issues])
    return info.value, shown


def test_the_known_secret_fields_are_found_in_the_plugins_models() -> None:
    found = {str(case) for case in CASES}
    assert {
        "inputs.forward.shared_key",
        "inputs.forward.users.*.password",
        "inputs.prometheus.basic_auth.password",
        "inputs.prometheus.bearer_token",
        "outputs.s3.proxy",
        "outputs.cloudwatch_logs.proxy",
    } <= found


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_literal_secret_is_named_by_its_path_never_shown(case: SecretCase) -> None:
    # Digits only: YAML makes it an int, which a string field rejects; the report used to add "(got 734...)".
    error, shown = rejected(case_config([case], substituted=False))
    assert leaked([case], shown) == []
    issue = next(i for i in error.issues if i.key_path == case.key_path)
    assert issue.message == "must be text"
    assert issue.hint is not None and "secret" in issue.hint and "quote it" in issue.hint


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_substituted_secret_is_never_shown(case: SecretCase) -> None:
    # The component is invalid for another reason; its secret must not appear anywhere in the report.
    _, shown = rejected(case_config([case], substituted=True, extra={"no_such_option": 1}), case_environ([case]))
    assert "no_such_option" in shown
    assert leaked([case], shown) == []


class LeakyConfig(ProcessorConfig):
    type: Literal["leaky"] = Field(description="Plugin type.", examples=["leaky"])
    api_key: str = Field("", description="A key.", examples=["${KEY}"], json_schema_extra=SECRET)
    header: str = Field("", description="Sent as is.", examples=["X-Key"])

    @model_validator(mode="after")
    def _check(self) -> LeakyConfig:
        # A careless plugin: the messages carry the values.
        if len(self.api_key) < 20:
            raise ValueError(f"api_key {self.api_key!r} is too short")
        if self.header.lower().startswith("authorization"):
            raise ValueError(f"header {self.header!r} would carry the key")
        return self


class Leaky(Processor):
    type_name = "leaky"
    description = "Echoes its secret in errors."
    Config = LeakyConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS


def test_a_secret_echoed_by_a_plugins_own_validator_is_redacted() -> None:
    registry = make_registry()
    registry.add(Leaky)
    text = """\
inputs:
  app: {type: counting}
processors:
  a: {type: leaky, inputs: [app], api_key: short-key-1}
  b: {type: leaky, inputs: [app], api_key: "${KEY}"}
  c:
    type: leaky
    inputs: [app]
    api_key: "${KEY2}x${KEY3}xxxxxxxxxxxxxxxxxxxxxxxxxxx"
    header: "Authorization: ${TOKEN}"
outputs:
  out: {type: capture, inputs: [a, b, c]}
"""
    environ = {"KEY": "7654321", "KEY2": "part-one", "KEY3": "part-two", "TOKEN": "Bearer-abc"}
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", registry, environ=environ)
    shown = info.value.format()
    for value in ("short-key-1", "7654321", "part-one", "part-two", "Bearer-abc"):
        assert value not in shown
    messages = {i.key_path: i.message for i in info.value.issues}
    assert messages["processors.a"] == f"api_key '{REDACTED}' is too short"
    assert messages["processors.b"] == f"api_key '{REDACTED}' is too short"
    assert messages["processors.c"] == f"header '{REDACTED}' would carry the key"  # the whole substituted text


def test_every_secret_at_once_through_substitution_and_literally() -> None:
    _, shown = rejected(case_config(CASES, substituted=False))
    assert leaked(CASES, shown) == []
    _, shown = rejected(case_config(CASES, substituted=True, extra={"no_such_option": 1}), case_environ(CASES))
    assert leaked(CASES, shown) == []


def test_a_digits_only_shared_key_from_the_environment_is_accepted_as_its_exact_text() -> None:
    text = """\
inputs:
  fw:
    type: forward
    shared_key: ${KEY}
    users:
      - {username: fluent, password: "${PASS}"}
outputs:
  out: {type: blackhole, inputs: [fw]}
"""
    config = parse_config(text, "c.yaml", REGISTRY, environ={"KEY": "0012345", "PASS": "0777"})
    fw = config.graph.components["fw"].config
    assert fw.shared_key.get_secret_value() == "0012345"  # not the int 12345, nor octal
    assert fw.users[0].password.get_secret_value() == "0777"
    assert "0012345" not in repr(fw)


def test_a_proxy_with_credentials_is_never_shown() -> None:
    text = """\
inputs:
  gen: {type: generator, count: 1}
outputs:
  s3:
    type: s3
    inputs: [gen]
    bucket: b
    proxy: "socks5://ops:${PROXY_PASSWORD}@proxy.internal:1080"
  s3b:
    type: s3
    inputs: [gen]
    bucket: b
    proxy: "ftp://ops:literal-pass-1@proxy.internal:1080"
"""
    error, shown = rejected(text, {"PROXY_PASSWORD": "s3cr3t-pw"})
    for secret in ("s3cr3t-pw", "literal-pass-1", "ops:", "socks5://"):
        assert secret not in shown
    messages = {i.key_path: i for i in error.issues}
    assert messages["outputs.s3.proxy"].message == f"'{REDACTED}' is not an http:// or https:// URL"
    assert "${PROXY_PASSWORD}" in (messages["outputs.s3.proxy"].hint or "")
    assert "secret" in (messages["outputs.s3b.proxy"].hint or "")


def test_substituted_values_of_ordinary_fields_are_not_echoed_either() -> None:
    text = """\
inputs:
  gen: {type: generator, count: 1}
outputs:
  cwl:
    type: cloudwatch_logs
    inputs: [gen]
    log_group: g
    region: ${REGION}
  cwl2:
    type: cloudwatch_logs
    inputs: [gen]
    log_group: g
    batch:
      max_events: ${MAX_EVENTS}
  s3:
    type: s3
    inputs: [gen]
    bucket: b
    compression: ${CODEC}
"""
    error, shown = rejected(text, {"REGION": "Mars_North_9", "MAX_EVENTS": "987654321", "CODEC": "zzcodec9"})
    for value in ("Mars_North_9", "987654321", "zzcodec9"):
        assert value not in shown
    paths = {i.key_path: i for i in error.issues}
    assert {"outputs.cwl.region", "outputs.cwl2.batch.max_events", "outputs.s3.compression"} <= set(paths)
    assert "${REGION}" in (paths["outputs.cwl.region"].hint or "")
    assert paths["outputs.cwl2.batch.max_events"].message == f"{REDACTED} is above the destination's limit of 10000"


def test_literal_values_of_ordinary_fields_are_still_shown() -> None:
    text = """\
inputs:
  gen: {type: generator, count: 1}
outputs:
  s3: {type: s3, inputs: [gen], bucket: b, region: Mars_North_9}
"""
    _, shown = rejected(text)
    assert "Mars_North_9" in shown  # written in the file, not secret: showing it helps


def test_the_schema_marks_secrets_write_only_and_holds_no_secret_value() -> None:
    schema = config_schema(REGISTRY)
    secret_props = list(_write_only_properties(schema))
    names = {name for name, _ in secret_props}
    assert {case.path[-1] for case in CASES} <= names
    for name, prop in secret_props:
        assert prop.get("default") is None, name
        for example in prop.get("examples", []):
            # An example shows the way to give a secret (a substitution), never a value.
            assert example is None or "${" in str(example), (name, example)


def _write_only_properties(node: Any) -> Any:
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if _is_write_only(prop):
                yield name, prop
        for value in node.values():
            yield from _write_only_properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _write_only_properties(value)


def _is_write_only(prop: Any) -> bool:
    if not isinstance(prop, dict):
        return False
    return prop.get("writeOnly") is True or any(_is_write_only(p) for p in prop.get("anyOf", []))


def test_secret_paths_follow_lists_unions_and_nesting() -> None:
    class Auth(BaseModel):
        user: str
        password: str = Field(json_schema_extra=SECRET)

    class Conf(BaseModel):
        auth: Auth | None = None
        users: list[Auth] = []
        headers: dict[str, SecretStr] = {}
        name: str = ""

    assert secret_field_paths(Conf) == [("auth", "password"), ("users", "*", "password"), ("headers",)]
    assert is_secret_path(Conf, ("auth", "password"))
    assert is_secret_path(Conf, ("users", 3, "password"))
    assert is_secret_path(Conf, ("headers", "Authorization"))
    assert not is_secret_path(Conf, ("users", 3, "user"))
    assert not is_secret_path(Conf, ("name",))
    data = {"auth": {"user": "u", "password": 42}, "users": [{"password": "p1"}], "headers": {"a": "h"}}
    assert secret_values(Conf, data) == {"42", "p1", "h"}


def test_redact_replaces_whole_values_and_leaves_unrelated_digits() -> None:
    assert redact("port 42 of 1423, '42'", {"42"}) == f"port {REDACTED} of 1423, '{REDACTED}'"
    assert redact("url http://u:longsecretvalue@h", {"longsecretvalue"}) == f"url http://u:{REDACTED}@h"
    assert redact("abc-abcdef", {"abc", "abcdef"}) == f"{REDACTED}-{REDACTED}"
