"""The options the `cloudwatch_metrics` output and the `metrics_to_emf` processor share, declared once.

Both turn metric records into CloudWatch datums with the same rules
(`datums.py`), so they take the same options for it. The
options whose wording suits both are annotated types here; the rest keep their
own description in each plugin. `DatumSettings` is the config mixin: the
checks that span options and the `DatumOptions` the builder takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from collector_plugins.common.cloudwatch_metrics.datums import DatumOptions, check_dimension, check_namespace
from collector_plugins.common.cloudwatch_metrics.dimensions import (
    DEFAULT_METADATA_ENDPOINT,
    FROM_TAGS,
    placeholder,
)
from collector_plugins.common.cloudwatch_metrics.limits import MAX_DIMENSIONS


def _check_endpoint(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http:// URL")
    return value.rstrip("/")


Namespace = Annotated[
    str,
    AfterValidator(check_namespace),
    Field(
        "CWAgent",
        description="The CloudWatch namespace (1-255 characters, not starting with `AWS/` or `:`).",
        examples=["CWAgent", "MyApp"],
    ),
]
Dimensions = Annotated[
    list[str] | None,
    Field(
        None,
        description="Only these tags become dimensions; null: every tag (minus `drop_dimensions`).",
        examples=[["host", "route"], None],
    ),
]
DropDimensions = Annotated[
    list[str],
    Field(
        default_factory=list,
        description="Tags that never become dimensions (when `dimensions` is null).",
        examples=[["request_id"]],
    ),
]
MetadataEndpoint = Annotated[
    str,
    AfterValidator(_check_endpoint),
    Field(
        DEFAULT_METADATA_ENDPOINT,
        description="Where instance metadata (IMDSv2) is read for `append_dimensions`.",
        examples=["http://169.254.169.254", "http://[fd00:ec2::254]"],
    ),
]


def check_append_dimensions(value: dict[str, str], *, ec2_tags: bool) -> dict[str, str]:
    """Check `append_dimensions`; `ec2_tags`: whether placeholders read from EC2 tags are allowed."""
    if len(value) > MAX_DIMENSIONS.value:
        raise ValueError(f"at most {MAX_DIMENSIONS.value} dimensions per metric")
    for name, text in value.items():
        key = placeholder(text)
        if key in FROM_TAGS and not ec2_tags:
            raise ValueError(f"{text} needs the EC2 API: use the cloudwatch_metrics output for it")
        check_dimension(name, "x" if key else text)  # a placeholder's value is known only at start
    return value


class DatumSettings(BaseModel):
    """Mixin for a config that declares the datum options (`namespace` ... `storage_resolution`)."""

    if TYPE_CHECKING:
        namespace: str
        namespace_from_tag: str | None
        dimensions: list[str] | None
        drop_dimensions: list[str]
        append_dimensions: dict[str, str]
        distribution: Literal["values", "statistic_set"]
        storage_resolution: Literal["auto", 1, 60]

    @model_validator(mode="after")
    def _check_dimension_choice(self) -> DatumSettings:
        if self.dimensions is not None and self.drop_dimensions:
            raise ValueError("give either `dimensions` (tags to keep) or `drop_dimensions`, not both")
        return self

    def literal_dimensions(self) -> dict[str, str]:
        """The `append_dimensions` known before start (literal values, no placeholders)."""
        return {k: v for k, v in self.append_dimensions.items() if placeholder(v) is None}

    def datum_options(self, appended: dict[str, str]) -> DatumOptions:
        """The builder's options, with `appended` the dimensions resolved so far."""
        return DatumOptions(
            namespace=self.namespace,
            namespace_from_tag=self.namespace_from_tag,
            dimensions=tuple(self.dimensions) if self.dimensions is not None else None,
            drop_dimensions=frozenset(self.drop_dimensions),
            append=appended,
            distribution=self.distribution,
            resolution=self.storage_resolution,
        )
